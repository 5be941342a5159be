-- release_orphans: hand back leases the broker holds for a worker that the worker never received.
-- KEYS: none declared; keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] workerId; then the task ids.
-- Why: a reserve.lua call can run in Redis and its reply never reach the worker (the connection dies in
--   between; ioredis may even send the call again, which leases other tasks). Those leases name the worker,
--   and its lease keeper renews every lease that names it (extend_worker.lua), so without this they would
--   stay leased, and never run, for as long as the worker lives.
-- Guarantees: only a lease that still names this worker is touched, so a task settled, recovered or leased
--   to anyone else meanwhile is left alone; the task goes back to the FRONT of its priority in <q>:ready
--   with the delivery its lost lease counted taken back (it never ran), as release.lua does.
-- Returns: number of tasks handed back.
local p, worker = ARGV[1], ARGV[2]
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = p .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'w', 'q', 'pr', 'd', 't')
  if f[1] == worker and f[2] and f[5] then
    local qk = p .. 'q:' .. f[2]
    redis.call('ZREM', qk .. ':active', id)
    redis.call('SREM', p .. 'w:' .. worker .. ':jobs', id)
    redis.call('HDEL', jk, 't', 'w', 's')
    if (tonumber(f[4]) or 0) > 0 then redis.call('HINCRBY', jk, 'd', -1) end
    redis.call('ZADD', qk .. ':ready', (9 - (tonumber(f[3]) or 0)) * 1e14, id)
    if redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
    n = n + 1
  end
end
return n
