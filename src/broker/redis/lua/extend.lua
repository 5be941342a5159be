-- extend: renew the leases a worker holds.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] leaseMs; then 3 per task: id, token, queue.
-- Guarantees: a lease is pushed to now + leaseMs (Redis server time) only while the caller still holds
--   the task's current token; a lease that was already recovered is reported lost, never revived. The
--   renewals are one ZADD XX per queue for the whole call.
--   A task hash <p>j:<id> of another kind (written over after the task was leased) never fails the call:
--   it failed at every housekeeping tick of a worker that renews its own leases (one run without the lease
--   keeper thread, as an embedded Worker), its heartbeat and sweep coming after it, until that task
--   finished, so the worker's other leases ran out and its running tasks ran a second time elsewhere. Its
--   token is lost with it: a task still in <q>:active is renewed (settle.lua then records its worker's
--   outcome while it is leased), one that is not is reported lost. The hash is left where it is, for the
--   settle (or, should the worker die, the sweep) to set aside and report: renamed here, that settle would
--   find no record and no sign that it was lost. No extra command while the hash is good (pcall on the read).
-- Returns: the ids whose lease was lost.
local p, leaseMs = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tostring(now + leaseMs)
local lost = {}
local held, queues = {}, {}
for i = 3, #ARGV, 3 do
  local id, token, q = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.pcall('HGET', p .. 'j:' .. id, 't')
  if type(cur) == 'table' and cur.err then
    -- Of another kind (HGET refuses nothing else): still leased stands in for the lost token.
    cur = redis.call('ZSCORE', p .. 'q:' .. q .. ':active', id) and token
  end
  if cur == token then
    local h = held[q]
    if not h then
      h = {}
      held[q] = h
      queues[#queues + 1] = q
    end
    h[#h + 1] = deadline
    h[#h + 1] = id
  else
    lost[#lost + 1] = id
  end
end
-- Chunks stay below Lua's limit on the number of values unpack can pass to a call.
for _, q in ipairs(queues) do
  local h = held[q]
  for k = 1, #h, 1000 do
    redis.call('ZADD', p .. 'q:' .. q .. ':active', 'XX', unpack(h, k, math.min(k + 999, #h)))
  end
end
return lost
