-- extend: renew the leases a worker holds.
-- KEYS: none declared; keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] leaseMs; then 3 per task: id, token, queue.
-- Guarantees: a lease is pushed to now + leaseMs (Redis server time) only while the caller still holds
--   the task's current token; a lease that was already recovered is reported lost, never revived.
-- Returns: the ids whose lease was lost.
local p, leaseMs = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 3, #ARGV, 3 do
  local id, token, q = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HGET', p .. 'j:' .. id, 't') == token then
    redis.call('ZADD', p .. 'q:' .. q .. ':active', 'XX', now + leaseMs, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
