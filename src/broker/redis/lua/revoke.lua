-- revoke: make tasks never start, durably.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] ttlMs (how long the revoke is remembered; <= 0: for ever), ARGV[3] resultTtlMs
--   (<= 0: no expiry);
--   ARGV[4] the control message announcing the revoke to workers; ARGV[5] '1' for a terminating revoke
--   (--terminate), else '0'; ARGV[6..] task ids.
-- Guarantees: each id is recorded in <p>revoked until now + ttlMs (a revoke for ever: until FOREVER, below),
--   so a task enqueued or recovered later under that id is finished as REVOKED by reserve.lua instead of
--   running. A task that is waiting (ready or delayed) is removed at once, its REVOKED result
--   (lib/revoked_result.lua) stored and published unless the id has a result already, and its unique key
--   freed; a running task is left to its worker (revoke --terminate aborts it through the control channel).
--   A terminating revoke is also recorded in <p>revoked:terminate (zset, score = the same expiry), so a
--   worker whose subscriber missed the announcement (reconnecting) is told again that it terminates
--   (resyncRevokes in redis-transport.ts), not only that it revokes. A later plain revoke of such an id
--   can shorten that entry (to its own expiry) but never lengthens it: a terminate outlives neither its
--   own TTL nor the id's latest revoke. Expired entries are pruned here, on each revoke (recover.lua does
--   not know this key). A key of another type there fails a terminating revoke before anything is
--   written (error starting BADKEY); a plain revoke leaves it alone.
--   The control message is published on <p>control in the same step, once the revoke is recorded, so
--   workers hear revokes in the order they were made, on a Redis Cluster too (where a client's own
--   PUBLISH goes to whichever node, and two of them can reach a subscriber in either order).
-- Returns: number of waiting tasks removed.
--#include revoked_result
local p, ttl, resultTtl, terminate = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5] == '1'
local FIRST_ID = 6
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A finite score that every reader compares as later than any now (year 33658): '+inf' also round-trips
-- through ZADD/ZSCORE and tonumber here, but comes back as "inf", which JavaScript's Number() reads as NaN
-- (resyncRevokes, the Celery consumer's admit check). 1e15 is written and read back exactly.
local FOREVER = 1e15
local untilMs = ttl > 0 and math.min(now + ttl, FOREVER) or FOREVER
local removed = 0
local termKey = p .. 'revoked:terminate'
local termKind = redis.call('TYPE', termKey).ok
if termKind ~= 'none' and termKind ~= 'zset' then
  if terminate then
    return redis.error_reply('BADKEY ' .. termKey .. ' holds a ' .. termKind .. ', not the sorted set of '
      .. 'terminating revokes: another program writes under this prefix; rename or delete that key')
  end
  termKind = 'foreign'
end
if termKind == 'zset' then redis.call('ZREMRANGEBYSCORE', termKey, '-inf', now) end
for i = FIRST_ID, #ARGV do
  local id = ARGV[i]
  redis.call('ZADD', p .. 'revoked', untilMs, id)
  if terminate then
    redis.call('ZADD', termKey, untilMs, id)
  elseif termKind == 'zset' then
    redis.call('ZADD', termKey, 'XX', 'LT', untilMs, id)
  end
  local jk = p .. 'j:' .. id
  local fields = redis.call('HMGET', jk, 'q', 't', 'u', 'dr', 'p')
  local q = fields[1]
  if q and not fields[2] and not fields[4] then
    local qk = p .. 'q:' .. q
    redis.call('ZREM', qk .. ':ready', id)
    redis.call('ZREM', qk .. ':delayed', id)
    redis.call('DEL', jk)
    if fields[3] and fields[3] ~= '' and redis.call('GET', p .. 'u:' .. fields[3]) == id then
      redis.call('DEL', p .. 'u:' .. fields[3])
    end
    local rk = p .. 'r:' .. id
    local rec = revokedRecord(id, q, fields[5], now)
    -- NX: a result already stored under this id is the task's own (a finished run's), and a revoke does not
    -- replace it, as on the embedded broker; waiters already had it, so nothing is published then.
    local stored
    if resultTtl > 0 then stored = redis.call('SET', rk, rec, 'NX', 'PX', resultTtl) else stored = redis.call('SET', rk, rec, 'NX') end
    if stored then redis.call('PUBLISH', rk, rec) end
    removed = removed + 1
  end
end
redis.call('PUBLISH', p .. 'control', ARGV[4])
return removed
