-- reserve: lease up to `max` ready tasks to one worker.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] workerId, ARGV[3] max (negative: lease -max and answer in the compact form below),
--   ARGV[4] leaseMs, ARGV[5] token prefix (unique per call), ARGV[6] resultTtlMs (for tasks found revoked),
--   ARGV[7..] queue names, most important first.
-- Guarantees: atomically, each returned task leaves <q>:ready, enters <q>:active with score = lease deadline
--   (Redis server time), gets a fresh token and its delivery count incremented, and is recorded in the
--   worker's set <p>w:<worker>:jobs; so a task is either ready or leased to exactly one token. Due delayed
--   tasks of these queues are promoted first. A revoked task is never returned: it is finished as REVOKED
--   (its result from lib/revoked_result.lua, unless the id has a result already).
--   A ready id whose task hash is missing or unreadable is moved to <q>:dead with a reason, never returned;
--   a delivery count that is not a number counts as 0. If ready tasks remain, the wake marker is kept so
--   another blocked consumer wakes. Idempotent per token prefix: a re-sent call (lost reply) returns the
--   first call's leases, recorded in <p>w:<worker>:last. A revokes key of another type leases nothing, and
--   a sequence counter INCR refuses promotes nothing, with nextDueMs 250 ms ahead, rather than failing:
--   recover.lua sets such a key aside within a second. The worker's own keys of another kind are set aside
--   here, reported in <p>poisoned: <p>w:<worker>:last (the call then counts as a new one) and
--   <p>w:<worker>:jobs (listed again from the active tasks, lib/worker_jobs.lua); neither costs a command
--   while the key is good.
-- Returns: {nextDueMs (-1 if nothing delayed), now, id, queue, payload, token, deliveries, leaseUntil, ...}.
--   Compact form (fewer reply elements to parse): {nextDueMs, now, leaseUntil, then per queue with leases:
--   queue, count, count x (id, payload, deliveries)}; the k-th task returned (from 1, across queues) holds
--   token <token prefix>k, and every lease ends at leaseUntil. A re-sent compact call is answered with
--   leaseUntil = -1 followed by the full six-value rows, since those leases need not be numbered in order.
--#include revoked_result
--#include bad_key
--#include worker_jobs
local p, worker = ARGV[1], ARGV[2]
local max, leaseMs, tokenPrefix, resultTtl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local compact = max < 0
if compact then max = -max end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseUntil = now + leaseMs
-- Numbers passed to redis.call are formatted with sprintf each time; format the per-batch ones once.
local nowS, leaseS = tostring(now), tostring(leaseUntil)
local out = {-1, now}
if compact then out[3] = leaseUntil end
local n = 0
local nextDue = -1
local revokedKey = p .. 'revoked'
-- Set and sorted-set writes are sent once per batch (one command is far cheaper than one per task); unpack
-- in chunks stays below Lua's limit on the number of values it can pass to a call.
local CHUNK = 1000
local function many(cmd, key, list)
  for i = 1, #list, CHUNK do redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list))) end
end

-- A reply lost with a dropped connection makes the client re-send this exact call (same token prefix).
-- Answer it with what the first run leased, instead of leasing more and stranding those until expiry.
local lastKey = p .. 'w:' .. worker .. ':last'
local last = redis.pcall('GET', lastKey)
if type(last) == 'table' then
  -- Of another kind (a string or nothing is all this script leaves there): only the answer to a re-sent
  -- call was kept there, and SET below would replace it only once a call leases something.
  renameAside(p, lastKey, redis.call('TYPE', lastKey).ok, 'a string',
    "it only marks the worker's last reserve call, so that a re-sent one is answered the same; nothing is lost")
elseif last == tokenPrefix then
  if compact then out[3] = -1 end
  for _, id in ipairs(jobsCall(p, worker, 'SMEMBERS')) do
    local f = redis.call('HMGET', p .. 'j:' .. id, 't', 'q', 'p', 'd')
    if f[1] and f[2] and f[3] and string.sub(f[1], 1, #tokenPrefix) == tokenPrefix then
      local lu = tonumber(redis.call('ZSCORE', p .. 'q:' .. f[2] .. ':active', id) or leaseUntil)
      for _, v in ipairs({id, f[2], f[3], f[1], tonumber(f[4]) or 1, lu}) do out[#out + 1] = v end
    end
  end
  return out
end

local revokedCount = redis.pcall('ZCARD', revokedKey)
-- A revokes key of another type cannot say which tasks are revoked: lease nothing (a revoked task must not
-- run) and ask again shortly; recover.lua sets the key aside within a second.
if type(revokedCount) ~= 'number' then
  out[1] = now + 250
  return out
end
local anyRevoked = revokedCount > 0
-- Set when the sequence counter is unusable (see the promotion below).
local seqBad = false

local leased = {}
for qi = 7, #ARGV do
  local q = ARGV[qi]
  local qk = p .. 'q:' .. q
  -- pcall: a queue key of the wrong type is skipped here and set aside by recover.lua within a second.
  -- The earliest delayed entry alone tells whether anything is due: one call when nothing is.
  local first = redis.pcall('ZRANGE', qk .. ':delayed', 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) <= now then
    local due = redis.call('ZRANGEBYSCORE', qk .. ':delayed', '-inf', now, 'LIMIT', 0, 1000)
    for _, id in ipairs(due) do
      -- pcall: a counter INCR refuses (another program's value) leaves due tasks delayed until recover.lua
      -- replaces it within a second; ready tasks are still leased meanwhile.
      local seq = redis.pcall('INCR', p .. 'seq')
      if type(seq) ~= 'number' then
        seqBad = true
        break
      end
      local pr = tonumber(redis.pcall('HGET', p .. 'j:' .. id, 'pr')) or 0
      redis.call('ZADD', qk .. ':ready', (9 - pr) * 1e14 + seq, id)
      redis.call('ZREM', qk .. ':delayed', id)
    end
    first = redis.call('ZRANGE', qk .. ':delayed', 0, 0, 'WITHSCORES')
  end
  if first[2] then
    local d = tonumber(first[2])
    if nextDue < 0 or d < nextDue then nextDue = d end
  end

  local active = {}
  local countAt
  while n < max do
    -- ZRANGE + ZREMRANGEBYRANK rather than ZPOPMIN: the same lowest entries, without formatting a score
    -- per task into the reply only to throw it away.
    local popped = redis.pcall('ZRANGE', qk .. ':ready', 0, max - n - 1)
    if popped.err or #popped == 0 then break end
    redis.call('ZREMRANGEBYRANK', qk .. ':ready', 0, #popped - 1)
    for _, id in ipairs(popped) do
      local jk = p .. 'j:' .. id
      local f = redis.pcall('HMGET', jk, 'p', 'd')
      local payload = f.err and f or f[1]
      if type(payload) ~= 'string' then
        -- Poisoned entry: the id has no readable task behind it. Park it in dead-letter with the reason.
        local why = 'task data missing'
        if type(payload) == 'table' and payload.err then why = 'task data unreadable: ' .. payload.err end
        if redis.call('TYPE', jk).ok ~= 'hash' then redis.call('DEL', jk) end
        redis.call('HSET', jk, 'q', q, 'dr', why, 'da', now, 'd', 0)
        redis.call('ZADD', qk .. ':dead', now, id)
        redis.call('RPUSH', p .. 'poisoned', 'task ' .. id .. ' in queue ' .. q .. ' dead-lettered: ' .. why)
      elseif anyRevoked and (tonumber(redis.call('ZSCORE', revokedKey, id) or '0') or 0) > now then
        redis.call('DEL', jk)
        local rk = p .. 'r:' .. id
        local rec = revokedRecord(id, q, payload, now)
        -- NX: a result already stored under this id is the task's own (a finished run's), and a revoke does not
        -- replace it, as on the embedded broker; waiters already had it, so nothing is published then.
        local stored
        if resultTtl > 0 then stored = redis.call('SET', rk, rec, 'NX', 'PX', resultTtl) else stored = redis.call('SET', rk, rec, 'NX') end
        if stored then redis.call('PUBLISH', rk, rec) end
      else
        n = n + 1
        local token = tokenPrefix .. n
        -- One HSET instead of HINCRBY + HSET: the count just read is the one being raised, in this same step.
        local d = tonumber(f[2])
        if not (d and d >= 0 and d < 1e15) then d = 0 end
        d = math.floor(d) + 1
        redis.call('HSET', jk, 'd', d == 1 and '1' or d, 't', token, 'w', worker, 's', nowS)
        active[#active + 1] = leaseS
        active[#active + 1] = id
        leased[#leased + 1] = id
        if compact then
          if not countAt then
            out[#out + 1] = q
            out[#out + 1] = 0
            countAt = #out
          end
          out[#out + 1] = id
          out[#out + 1] = payload
          out[#out + 1] = d
        else
          out[#out + 1] = id
          out[#out + 1] = q
          out[#out + 1] = payload
          out[#out + 1] = token
          out[#out + 1] = d
          out[#out + 1] = leaseUntil
        end
      end
    end
  end
  if #active > 0 then many('ZADD', qk .. ':active', active) end
  if countAt then out[countAt] = #active / 2 end
  if n >= max then
    if (tonumber(redis.pcall('ZCARD', qk .. ':ready')) or 0) > 0 and redis.pcall('LLEN', qk .. ':wake') == 0 then
      redis.call('LPUSH', qk .. ':wake', '1')
    end
  end
end
for i = 1, #leased, CHUNK do jobsCall(p, worker, 'SADD', unpack(leased, i, math.min(i + CHUNK - 1, #leased))) end
-- Due tasks left delayed: look again soon rather than at once (their due time has passed).
if seqBad then nextDue = now + 250 end
out[1] = nextDue
if n > 0 then redis.call('SET', lastKey, tokenPrefix, 'PX', leaseMs) end
return out
