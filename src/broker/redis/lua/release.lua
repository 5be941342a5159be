-- release: hand leased tasks back unstarted or unfinished (warm/cold shutdown, unused prefetch).
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix; then 3 per task: id, token, queue.
-- Guarantees: only the current token holder can release; the task goes back to the FRONT of its priority
--   in <q>:ready at once (no waiting for lease expiry) and the delivery this lease counted is taken back,
--   so a clean shutdown never pushes a task toward max_deliveries.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
-- Returns: number of tasks released.
--#include bad_key
--#include worker_jobs
local p = ARGV[1]
local n = 0
for i = 2, #ARGV, 3 do
  local id, token, q = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = p .. 'j:' .. id
  local fields = redis.call('HMGET', jk, 't', 'w', 'pr', 'd')
  if fields[1] == token then
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
