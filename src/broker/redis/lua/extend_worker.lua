-- extend_worker: renew every lease recorded for one worker.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] workerId, ARGV[3] leaseMs.
-- Guarantees: every task in the worker's set <p>w:<worker>:jobs whose hash still names this worker gets
--   its lease pushed to now + leaseMs (Redis server time), atomically. reserve.lua adds a task to the set in
--   the same step that leases it, and every script that ends or takes away a lease (settle, retry, release,
--   dead_letter, recover) removes it, so this renews exactly the leases the worker holds, including ones
--   its process has not seen yet; a recovered task is never revived. Set members whose task is gone, not
--   active, or leased to another worker are dropped from the set.
--   A set of another kind is set aside and listed again from the active tasks (lib/worker_jobs.lua), so
--   the leases are still renewed.
-- Returns: the ids renewed.
--#include bad_key
--#include worker_jobs
local p, worker, leaseMs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local leaseUntil = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + leaseMs
local renewed, stale = {}, {}
for _, id in ipairs(jobsCall(p, worker, 'SMEMBERS')) do
  local f = redis.pcall('HMGET', p .. 'j:' .. id, 'w', 'q', 't')
  local active = type(f) == 'table' and f[1] == worker and f[2] and f[3] and p .. 'q:' .. f[2] .. ':active'
  if active and redis.call('ZSCORE', active, id) then
    redis.call('ZADD', active, 'XX', leaseUntil, id)
    renewed[#renewed + 1] = id
  else
    stale[#stale + 1] = id
  end
end
for s = 1, #stale, 4000 do
  jobsCall(p, worker, 'SREM', unpack(stale, s, math.min(s + 3999, #stale)))
end
return renewed
