-- release: hand leased tasks back unstarted or unfinished (warm/cold shutdown, unused prefetch).
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix; then 3 per task: id, token, queue.
-- Guarantees: only the current token holder can release; the task goes back to the FRONT of its priority
--   in <q>:ready at once (no waiting for lease expiry) and the delivery this lease counted is taken back,
--   so a clean shutdown never pushes a task toward max_deliveries.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is a task hash <p>j:<id> of another kind (written over after the task was leased; renamed aside by
--   lib/bad_key.lua, reported in <p>poisoned), rather than failing the call part-way: the tasks after it
--   stayed leased until their leases ran out, run again only then. Its token and payload are lost with it,
--   so there is nothing to hand back: a task still in <q>:active is dead-lettered (kept in <q>:dead with
--   the reason but no payload, as the sweep would once its lease ran out; its worker's set drops it at the
--   next renewal), one that is not is left alone. No extra command while the hash is good (pcall on the read).
-- Returns: number of tasks released (one dead-lettered for its record is not counted).
--#include bad_key
--#include worker_jobs
local p = ARGV[1]
local n = 0
local now

-- The task's hash holds another kind of data: set aside, and the task dead-lettered if still leased.
local function lostRecord(jk, id, q)
  local qk = p .. 'q:' .. q
  local leased, aside = lostTaskHash(p, jk, id, q,
    'task ' .. id .. "'s record (payload, delivery count, unique key) is lost, so it could not be handed back; it was dead-lettered (qworker dead shows why)",
    'task ' .. id .. "'s record is lost; it was no longer leased, so it was not handed back")
  if not leased then return end
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  redis.call('ZREM', qk .. ':active', id)
  redis.call('HSET', jk, 'q', q, 'd', 0, 'dr', 'its record was written over by another program while it was leased (kept as ' .. aside ..
    '); nothing was left to run when its worker handed it back', 'da', now)
  redis.call('ZADD', qk .. ':dead', now, id)
end

for i = 2, #ARGV, 3 do
  local id, token, q = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = p .. 'j:' .. id
  local fields = redis.pcall('HMGET', jk, 't', 'w', 'pr', 'd')
  if fields.err then
    lostRecord(jk, id, q)
  elseif fields[1] == token then
    local qk = p .. 'q:' .. q
    redis.call('ZREM', qk .. ':active', id)
    if fields[2] then jobsCall(p, fields[2], 'SREM', id) end
    redis.call('HDEL', jk, 't', 'w', 's')
    if (tonumber(fields[4]) or 0) > 0 then redis.call('HINCRBY', jk, 'd', -1) end
    redis.call('ZADD', qk .. ':ready', (9 - (tonumber(fields[3]) or 0)) * 1e14, id)
    if redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
    n = n + 1
  end
end
return n
