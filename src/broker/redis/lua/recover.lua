-- recover: the sweeper any live worker runs every few seconds.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] maxDeliveries, ARGV[3] heartbeatTtlMs, ARGV[4] deadMax, ARGV[5] deadTtlMs.

-- Guarantees, each step atomic with the others (one script):
--   1. due delayed tasks of every known queue move to ready;
--   2. tasks of workers whose heartbeat is older than heartbeatTtlMs go back to the front of ready, even
--      before their lease deadline (the worker is gone: waiting for the lease would only delay them);
--      for heartbeatTtlMs after Redis (re)starts heartbeats are not judged, as every one looks stale; nor for
--      heartbeatTtlMs after a gap in these sweeps (Redis frozen or unreachable, the machine paused), for the
--      same reason;
--   3. tasks whose lease deadline passed go back the same way;
--   in 2 and 3 a task already delivered maxDeliveries times is dead-lettered instead, with the reason,
--   so a task that kills its worker cannot crash-loop the fleet;
--   4. dead-letter sets are trimmed to deadMax entries and deadTtlMs of age; expired revokes are dropped;
--   0. first, a global key holding the wrong Redis type (poisoned, workers, queues, revoked,
--      revoked:terminate, events, recover:last, recover:gap), or a sequence counter that INCR refuses, is renamed aside to
--      <key>:poisoned:<now> (-2, -3, ... added if that name is taken, see moveAside in lib/bad_key.lua)
--      and reported with what it held and what that costs; the queue set is listed again from the live
--      workers' queues, and the counter goes on above every sequence in a ready set;
--      then a queue key holding the wrong Redis type (written by something else) is renamed aside the same
--      way and reported in <q>:dead, so one bad key cannot stop every queue's recovery.
--   A worker's set of leases of another kind, met in 2 or 3, is set aside and listed again
--   (lib/worker_jobs.lua) rather than failing the sweep; so is the unique key <p>u:<key> of a task
--   dead-lettered there (lib/bad_key.lua: nothing is lost, the task is done with it), which failed the
--   sweep part-way (the rest of its work, the poison reports among it, waited for the next one). A task
--   hash of another kind is replaced by a dead-letter record saying so.
--   Poison reports (here, from reserve.lua and from the scripts that set a worker's keys aside) wait in the
--   list <p>poisoned; each is returned once, for the worker that ran this sweep to log.
-- Returns: {promoted, recovered, deadLettered, {poison report, ...}}
--#include bad_key
--#include worker_jobs
local p = ARGV[1]
local maxDeliveries, hbTtl = tonumber(ARGV[2]), tonumber(ARGV[3])
local deadMax, deadTtl = tonumber(ARGV[4]), tonumber(ARGV[5])
-- 0 or less means "no limit", as on the embedded transport.
if deadMax <= 0 then deadMax = math.huge end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local promoted, recovered, dead = 0, 0, 0

local function poisonedKey(key, q, found, want)
  local aside = moveAside(key, now)
  local id = 'poisoned-key:' .. aside
  local why = key .. ' held a ' .. found .. ', not a ' .. want .. '; renamed to ' .. aside .. ' (inspect it, then DEL it)'
  redis.call('DEL', p .. 'j:' .. id)
  redis.call('HSET', p .. 'j:' .. id, 'q', q, 'dr', why, 'da', now, 'd', 0)
  redis.call('ZADD', p .. 'q:' .. q .. ':dead', now, id)
  redis.call('RPUSH', p .. 'poisoned', why)
end

local function putBack(id, q)
  local jk = p .. 'j:' .. id
  local qk = p .. 'q:' .. q
  local fields = redis.pcall('HMGET', jk, 'w', 'd', 'pr', 'u')
  redis.call('ZREM', qk .. ':active', id)
  if fields.err then
    -- The task's data was overwritten with another type: nothing left to run; report it.
    local why = 'task data unreadable: ' .. fields.err
    redis.call('DEL', jk)
    redis.call('HSET', jk, 'q', q, 'dr', why, 'da', now, 'd', 0)
    redis.call('ZADD', qk .. ':dead', now, id)
    redis.call('RPUSH', p .. 'poisoned', 'task ' .. id .. ' in queue ' .. q .. ' dead-lettered: ' .. why)
    return
  end
  if fields[1] then jobsCall(p, fields[1], 'SREM', id) end
  redis.call('HDEL', jk, 't', 'w', 's')
  local d = tonumber(fields[2]) or 0
  if d >= maxDeliveries then
    redis.call('HSET', jk, 'dr', 'delivered ' .. d .. ' times without finishing (max_deliveries=' ..
      maxDeliveries .. '); it may be crashing or hanging its worker', 'da', now)
    redis.call('ZADD', qk .. ':dead', now, id)
    if fields[4] and fields[4] ~= '' then
      releaseUnique(p, fields[4], id, 'its task was dead-lettered, which frees the key: nothing is lost')
    end
    dead = dead + 1
  else
    redis.call('ZADD', qk .. ':ready', (9 - (tonumber(fields[3]) or 0)) * 1e14, id)
    if redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
    recovered = recovered + 1
  end
end

-- 0. wrong-type global keys. Every script (every send, every reserve) touches some of these, so one of them
-- holding another program's data stops every queue; sending or leasing cannot repair it safely, this
-- sweep can. The report list comes first: the others are reported into it.
local function setAside(key, found, want, cost)
  renameAside(p, key, found, want, cost)
end
local globals = {
  {'poisoned', 'list', 'a list', 'reports of poisoned tasks waiting there were not logged (their tasks are in the dead-letter sets)'},
  {'workers', 'zset', 'a sorted set', 'live workers are listed again with their next heartbeat; tasks of a worker that died before now come back when their leases expire'},
  {'queues', 'set', 'a set', 'listed again now: the queues live workers consume; any other queue is listed again when a task is sent to it'},
  {'revoked', 'zset', 'a sorted set', 'the revokes stored there are lost, so a task revoked before now may run: re-issue them with qworker revoke <id>...'},
  -- Read by every terminating revoke (revoke.lua refuses one while this is bad) and every revoke resync
  -- after a subscriber reconnects (redis-transport.ts, which retries until it can read it).
  {'revoked:terminate', 'zset', 'a sorted set', 'the revokes themselves still hold (they are kept in revoked), but which of them terminate is lost, so a worker that missed the announcement of one is not told again to abort its running task: re-issue them with qworker revoke --terminate <id>...'},
  {'events', 'stream', 'a stream', 'task events recorded before now stay in the renamed key; new ones go to a new stream'},
  {'recover:last', 'string', 'a string', 'only timing of these sweeps was kept there, nothing is lost'},
  {'recover:gap', 'string', 'a string', 'only timing of these sweeps was kept there, nothing is lost'},
}
for _, g in ipairs(globals) do
  local key = p .. g[1]
  local found = redis.call('TYPE', key).ok
  if found ~= 'none' and found ~= g[2] then
    setAside(key, found, g[3], g[4])
    if g[1] == 'queues' then
      -- Each live worker's info names the queues it consumes: those need their expired leases recovered.
      for _, w in ipairs(redis.call('ZRANGE', p .. 'workers', 0, -1)) do
        local info = redis.pcall('GET', p .. 'w:' .. w)
        local ok, dec = pcall(cjson.decode, type(info) == 'string' and info or 'null')
        if ok and type(dec) == 'table' and type(dec.queues) == 'table' then
          for _, q in ipairs(dec.queues) do
            if type(q) == 'string' then redis.call('SADD', p .. 'queues', q) end
          end
        end
      end
    end
  end
end

local queues = redis.call('SMEMBERS', p .. 'queues')

-- 0. wrong-type queue keys
local kinds = {ready = 'zset', delayed = 'zset', active = 'zset', dead = 'zset', wake = 'list'}
for _, q in ipairs(queues) do
  for suffix, want in pairs(kinds) do
    local key = p .. 'q:' .. q .. ':' .. suffix
    local found = redis.call('TYPE', key).ok
    if found ~= 'none' and found ~= want then poisonedKey(key, q, found, want) end
  end
end

-- 0. the sequence that orders ready tasks within a priority (enqueue.lua). Its replacement goes on above
-- every sequence still in a ready set (score = (9 - priority) * 1e14 + seq, one band per priority), so a
-- task sent after the repair never overtakes one sent before it.
local seqKey = p .. 'seq'
local seqType = redis.call('TYPE', seqKey).ok
if seqType ~= 'none' and (seqType ~= 'string' or not isCounter(redis.call('GET', seqKey))) then
  local top = 0
  if seqType == 'string' then
    -- A number INCR refuses ('12.5', '1e6') still tells how far the count had gone.
    local old = tonumber(redis.call('GET', seqKey))
    if old and old > 0 and old < 1e14 then top = math.floor(old) end
  end
  for _, q in ipairs(queues) do
    local rk = p .. 'q:' .. q .. ':ready'
    if redis.call('TYPE', rk).ok == 'zset' then
      for band = 0, 9 do
        local base = band * 1e14
        local hi = redis.call('ZREVRANGEBYSCORE', rk, '(' .. string.format('%d', base + 1e14), string.format('%d', base),
          'WITHSCORES', 'LIMIT', 0, 1)
        if hi[2] then top = math.max(top, tonumber(hi[2]) - base) end
      end
    end
  end
  top = string.format('%d', top)
  local kind = seqType == 'string' and 'an integer' or 'a string holding an integer'
  setAside(seqKey, seqType, kind, 'the sequence that orders ready tasks goes on from ' .. top ..
    ', above every queued task, so queue order is kept')
  redis.call('SET', seqKey, top)
end

-- 2. dead workers. Right after Redis restarts every heartbeat looks stale at once (they are as old as the
-- outage), though the workers are alive and reconnecting. Judge heartbeats only once Redis has been up
-- for heartbeatTtlMs, so a restart does not hand a live worker's tasks to a peer (a duplicate run).
local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)') or '0') or 0
-- The same after a gap in these sweeps, which every live worker runs each second: a frozen (SIGSTOPped,
-- swapping) or unreachable Redis, or a paused machine, runs none, and every heartbeat is as old as the gap
-- when it ends. A gap of half the TTL (at most 3 s) starts a grace of one TTL, in which live workers beat
-- again; a worker that does not is judged after it. With no worker sweeping at all, the first one to
-- start waits that TTL too before it takes the dead workers' tasks (their expired leases are not held up).
local lastKey, gapKey = p .. 'recover:last', p .. 'recover:gap'
local last = tonumber(redis.call('GET', lastKey))
redis.call('SET', lastKey, now, 'PX', 86400000)
if last and now - last > math.min(3000, hbTtl / 2) then redis.call('SET', gapKey, now, 'PX', 86400000) end
local gapEnded = tonumber(redis.call('GET', gapKey)) or 0
local deadWorkers = {}
if uptime * 1000 >= hbTtl and now - gapEnded >= hbTtl then
  deadWorkers = redis.call('ZRANGEBYSCORE', p .. 'workers', '-inf', now - hbTtl, 'LIMIT', 0, 100)
end
for _, w in ipairs(deadWorkers) do
  local wj = p .. 'w:' .. w .. ':jobs'
  for _, id in ipairs(jobsCall(p, w, 'SMEMBERS')) do
    local fields = redis.pcall('HMGET', p .. 'j:' .. id, 'w', 'q')
    if not fields.err and fields[1] == w and fields[2] then putBack(id, fields[2]) end
  end
  redis.call('DEL', wj, p .. 'w:' .. w)
  redis.call('ZREM', p .. 'workers', w)
end

for _, q in ipairs(queues) do
  local qk = p .. 'q:' .. q
  -- 1. due delayed
  local due = redis.call('ZRANGEBYSCORE', qk .. ':delayed', '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local pr = tonumber(redis.pcall('HGET', p .. 'j:' .. id, 'pr')) or 0
    redis.call('ZADD', qk .. ':ready', (9 - pr) * 1e14 + redis.call('INCR', p .. 'seq'), id)
    redis.call('ZREM', qk .. ':delayed', id)
    promoted = promoted + 1
  end
  if #due > 0 and redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
  -- 3. expired leases
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk .. ':active', '-inf', now, 'LIMIT', 0, 1000)) do
    putBack(id, q)
  end
  -- 4. bounded dead-letter set
  local victims = {}
  if deadTtl > 0 then
    victims = redis.call('ZRANGEBYSCORE', qk .. ':dead', '-inf', now - deadTtl, 'LIMIT', 0, 1000)
  end
  local over = redis.call('ZCARD', qk .. ':dead') - #victims - deadMax
  if over > 0 then
    local oldest = redis.call('ZRANGE', qk .. ':dead', #victims, #victims + over - 1)
    for _, id in ipairs(oldest) do victims[#victims + 1] = id end
  end
  for _, id in ipairs(victims) do
    redis.call('ZREM', qk .. ':dead', id)
    redis.call('DEL', p .. 'j:' .. id)
  end
end
redis.call('ZREMRANGEBYSCORE', p .. 'revoked', '-inf', now)
local reports = redis.call('LRANGE', p .. 'poisoned', 0, 99)
if #reports > 0 then redis.call('LTRIM', p .. 'poisoned', #reports, -1) end
return {promoted, recovered, dead, reports}
