-- retry: schedule the next attempt of a leased task.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] id, ARGV[3] token, ARGV[4] queue, ARGV[5] priority, ARGV[6] new payload,
--   ARGV[7] dueAt (ms).
-- Guarantees: only the current token holder can retry; in one step the task leaves <q>:active and the
--   worker's set, its payload is replaced (retries incremented by the caller), its delivery count resets
--   (max_deliveries counts crashes per attempt) and it waits in <q>:delayed (or <q>:ready if already due).
--   The retry lives in Redis, never in a worker's memory.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is a task hash <p>j:<id> of another kind (written over after the task was leased; renamed aside by
--   lib/bad_key.lua, reported in <p>poisoned), which failed the call: the worker then tried to hand the
--   task back at every housekeeping tick (release.lua failed on it too), each time skipping the rest of
--   that tick, its sweep among it. Its token is lost with it: a task still in <q>:active is retried all the
--   same, its record rebuilt from the call (payload, queue, priority; a unique key it held is not freed
--   when it ends, its name lost too; its worker's set drops it at the next renewal), and one that is not
--   is refused as a lost lease. No extra command while the hash is good (pcall on the read).
-- Returns: 1 if retried, 0 if the token was no longer valid.
--#include bad_key
--#include worker_jobs
local p, id, token, q = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local pr, payload, due = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local jk = p .. 'j:' .. id
local fields = redis.pcall('HMGET', jk, 't', 'w')
if fields.err then
  local leased = lostTaskHash(p, jk, id, q,
    'task ' .. id .. "'s record (delivery count, unique key) is lost; it was retried with the payload its worker sent",
    'task ' .. id .. "'s record is lost; it was no longer leased, so its worker's retry was not scheduled")
  if not leased then return 0 end
  fields = {token, false}
  redis.call('HSET', jk, 'q', q)
end
if fields[1] ~= token then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local qk = p .. 'q:' .. q
redis.call('ZREM', qk .. ':active', id)
if fields[2] then jobsCall(p, fields[2], 'SREM', id) end
redis.call('HDEL', jk, 't', 'w', 's')
redis.call('HSET', jk, 'p', payload, 'pr', pr, 'd', 0)
if due > now then
  redis.call('ZADD', qk .. ':delayed', due, id)
else
  redis.call('ZADD', qk .. ':ready', (9 - pr) * 1e14 + redis.call('INCR', p .. 'seq'), id)
end
if redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
return 1
