-- dead_letter: move leased tasks that must not run (undecodable, oversized, poisoned) to dead-letter.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix; then 5 per task: id, token, queue, reason, error ('' = none).
-- Guarantees: only the current token holder can do it; in one step the task leaves <q>:active and the
--   worker's set and is kept in <q>:dead with reason, error and time, for `qworker dead` to show; its
--   unique key is freed, so the same work can be sent again.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is a task's own key of another kind (renamed aside by lib/bad_key.lua, reported in <p>poisoned),
--   rather than failing the call part-way with the tasks before it done: a unique key <p>u:<key> (nothing
--   is lost: the task is done with it); a task hash <p>j:<id> (written over after the task was leased: its
--   token is lost with it), after which a task still in <q>:active is dead-lettered all the same, kept with
--   reason, error and time but no payload (its unique key, unknown now, is not freed), and one that is
--   not is left alone. Neither check costs a command while the keys are good (pcall on the read).
-- Returns: number of tasks dead-lettered.
--#include bad_key
--#include worker_jobs
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 2, #ARGV, 5 do
  local id, token, q, reason, err = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local jk = p .. 'j:' .. id
  local qk = p .. 'q:' .. q
  local fields = redis.pcall('HMGET', jk, 't', 'w', 'u')
  if fields.err then
    -- Another program's data in the task's place: its token and unique key are lost with the record.
    local leased = lostTaskHash(p, jk, id, q,
      'task ' .. id .. "'s record (payload, delivery count, unique key) is lost; it was dead-lettered all the same (qworker dead shows why)",
      'task ' .. id .. "'s record is lost; it was no longer leased, so it was not dead-lettered")
    fields = leased and {token, false, false} or {}
    if leased then redis.call('HSET', jk, 'q', q, 'd', 0) end
  end
  if fields[1] == token then
    if fields[3] and fields[3] ~= '' then
      releaseUnique(p, fields[3], id, 'its task was dead-lettered, which frees the key: nothing is lost')
    end
    redis.call('ZREM', qk .. ':active', id)
    if fields[2] then jobsCall(p, fields[2], 'SREM', id) end
    redis.call('HDEL', jk, 't', 'w', 's')
    redis.call('HSET', jk, 'dr', reason, 'da', now)
    if err ~= '' then redis.call('HSET', jk, 'de', err) end
    redis.call('ZADD', qk .. ':dead', now, id)
    n = n + 1
  end
end
return n
