-- revoke: make tasks never start, durably.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] ttlMs (how long the revoke is remembered; <= 0: for ever), ARGV[3] resultTtlMs
--   (<= 0: no expiry);
--   ARGV[4] the control message announcing the revoke to workers; ARGV[5] '1' for a terminating revoke
--   (--terminate), else '0'; ARGV[6..] task ids.
-- Guarantees: each id is recorded in <p>revoked until now + ttlMs (a revoke for ever: until FOREVER, below),
--   or until the expiry it already had there if that is later: a revoke is a safety action, and revoking an
--   id again with a shorter TTL does not cut short an earlier, longer revoke (the embedded broker keeps the
--   later expiry too). So a task enqueued or recovered later under that id is finished as REVOKED by
--   reserve.lua instead of running. A task that is waiting (ready or delayed) is removed at once, its
--   REVOKED result (lib/revoked_result.lua) stored and published unless the id has a result already, and its
--   unique key freed; a running task is left to its worker (revoke --terminate aborts it through the control
--   channel).
--   A terminating revoke is also recorded in <p>revoked:terminate (zset), so a worker whose subscriber
--   missed the announcement (reconnecting) is told again that it terminates (resyncRevokes in
--   redis-transport.ts), not only that it revokes. Its score is the latest expiry of the id's terminating
--   revokes: a plain revoke neither starts, lengthens nor shortens it. As <p>revoked keeps the latest expiry
--   of all the id's revokes, terminating ones included, a terminate never outlives the id's revoke record.
--   Expired entries are pruned here, on each revoke (recover.lua does not prune this key). A key of another
--   type there fails a terminating revoke before anything is written (error starting BADKEY; recover.lua
--   sets such a key aside, as the other global keys); a plain revoke leaves it alone.
--   The control message is published on <p>control in the same step, once the revoke is recorded, so
--   workers hear revokes in the order they were made, on a Redis Cluster too (where a client's own
--   PUBLISH goes to whichever node, and two of them can reach a subscriber in either order). It tells how
--   long each id stays revoked: ARGV[4] as given for the ids this revoke holds longest, and a copy with the
--   ttlMs still left (0: for ever) for each group of ids an earlier revoke holds longer, so a worker does
--   not forget such an id early (src/worker/recent-revokes.ts).
--   ZSCORE and a compare, not ZADD GT: the expiry an id already had is needed for that message (and GT needs
--   Redis 6.2).
--   A task's own key of another kind (another program's data) never fails a revoke part-way (which kept
--   the revokes before it, unannounced): a unique key <p>u:<key> is renamed aside (lib/bad_key.lua,
--   reported in <p>poisoned; nothing is lost, the task is removed); a task hash <p>j:<id> is left where it is
--   and the task counted as not waiting, as the revoke cannot tell where it is: the id is revoked all the
--   same, and the script that meets the task (its worker's settle, a reserve, the sweep) deals with the key.
--   Neither check costs a command while the keys are good (pcall on the read).
-- Returns: number of waiting tasks removed.
--#include revoked_result
--#include bad_key
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
      .. 'terminating revokes: a running worker sets it aside within a second (start one if none runs), then revoke again')
  end
  termKind = 'foreign'
end
if termKind == 'zset' then redis.call('ZREMRANGEBYSCORE', termKey, '-inf', now) end
local revokedKey = p .. 'revoked'
-- Ids an earlier revoke holds past untilMs, by the expiry it holds them to (in the order first met).
local heldLonger, heldUntil, asGiven = {}, {}, {}
for i = FIRST_ID, #ARGV do
  local id = ARGV[i]
  local kept = tonumber(redis.call('ZSCORE', revokedKey, id))
  if kept and kept > untilMs then
    local group = heldLonger[kept]
    if not group then
      group = {}
      heldLonger[kept] = group
      heldUntil[#heldUntil + 1] = kept
    end
    group[#group + 1] = id
  else
    redis.call('ZADD', revokedKey, untilMs, id)
    asGiven[#asGiven + 1] = id
  end
  if terminate then
    local termUntil = tonumber(redis.call('ZSCORE', termKey, id))
    if not termUntil or termUntil < untilMs then redis.call('ZADD', termKey, untilMs, id) end
  end
  local jk = p .. 'j:' .. id
  local fields = redis.pcall('HMGET', jk, 'q', 't', 'u', 'dr', 'p')
  -- Of another kind (HMGET refuses nothing else): not renamed here, so that a worker running the task still
  -- settles it (settle.lua records its outcome while it is leased; it would find no record at all).
  if fields.err then fields = {} end
  local q = fields[1]
  if q and not fields[2] and not fields[4] then
    local qk = p .. 'q:' .. q
    redis.call('ZREM', qk .. ':ready', id)
    redis.call('ZREM', qk .. ':delayed', id)
    redis.call('DEL', jk)
    if fields[3] and fields[3] ~= '' then
      releaseUnique(p, fields[3], id, 'its task was revoked before it ran, which frees the key: nothing is lost')
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
if #heldUntil == 0 then
  redis.call('PUBLISH', p .. 'control', ARGV[4])
else
  local msg = cjson.decode(ARGV[4])
  if #asGiven > 0 then
    msg.ids = asGiven
    redis.call('PUBLISH', p .. 'control', cjson.encode(msg))
  end
  for _, kept in ipairs(heldUntil) do
    msg.ids = heldLonger[kept]
    msg.ttlMs = kept >= FOREVER and 0 or kept - now
    redis.call('PUBLISH', p .. 'control', cjson.encode(msg))
  end
end
return removed
