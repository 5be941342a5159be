-- enqueue: add tasks to their queues (ready, or delayed when due later).
-- KEYS[1]: not read. runScript (scripts.ts) names one key under the prefix only so that Redis Cluster
--   routes the call to the prefix's slot. Every key is built from the prefix in ARGV[1]; on a Cluster the
--   transport makes it hash-tagged (such as "{qw}:"), which keeps them all in that one slot.
-- ARGV[1] prefix, ARGV[2] n, ARGV[3..n+2] every queue the tasks name, each once; then 7 per task: id,
--   queue, priority (0..9), payload, dueAt (ms, 0 = now), uniqueKey ('' = none), uniqueForMs (0 = until
--   settled). The caller lists the queues so that their keys are checked before any task is stored
--   without a pass over the tasks to find them (a cost per task on the bulk path).
-- Keys touched: <p>queues (set), <p>j:<id> (hash: p payload, q queue, pr priority, d deliveries, and
--   u unique key only when there is one),
--   <p>q:<queue>:ready (zset, score = (9-priority)*1e14 + seq), <p>q:<queue>:delayed (zset, score = dueAt),
--   <p>q:<queue>:wake (list, at most one marker), <p>u:<uniqueKey> (string), <p>seq (counter),
--   <p>r:<id> (deleted).
-- Guarantees: each task is stored and queued in one step, or not at all when its id is already stored
--   (a re-sent id, or the same id twice in one call, never makes a second copy of a queued or running
--   task) or its unique key is held by a task that still exists; then the existing id is returned. An id
--   found only in a dead-letter set is queued afresh and leaves that set. A task stored afresh drops any
--   result an earlier task of the same id left, so whoever waits on the id sees this run's outcome. Ready
--   tasks keep the order they were sent in within their priority. One wake marker wakes a blocked
--   consumer. The per-queue writes (queue set, ready and delayed sorted sets, wake marker, sequence) are
--   one command per key for the whole call, not one per task: bulk sends cost Redis little more than
--   storing each task's hash. A sequence counter, queue set, or a listed queue's ready, delayed or wake
--   key of another kind (another program's data) fails the call before any task is stored, with an
--   error starting BADKEY that names the key; for a queue key the queue name alone is added to the queue
--   set, so that the recovery sweep (recover.lua) finds the key and sets it aside. A task's own key of
--   another kind (<p>j:<id> not a hash, <p>u:<uniqueKey> not a string) never fails the call part-way
--   (which kept the tasks before it while the caller saw an error, so a re-send could not tell what
--   landed): it is renamed aside (lib/bad_key.lua, reported in <p>poisoned, which the next recovery sweep
--   logs) and the task is stored as if the key were absent. The check costs nothing while the keys are
--   good: the read that needs the key (HMGET of an existing task, GET of a unique key) is a pcall, and
--   only its error leads to TYPE and the rename.
-- Returns: the duplicates only, as a flat list {position (1-based, in input order), id that will run, ...};
--   every other task was stored under its own id. (Echoing every id back cost Redis and the client more
--   than a tenth of a bulk send.)
--#include bad_key
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}

-- The sequence counter, the queue set and the keys of every listed queue are checked before any task is
-- stored: a script that fails part-way keeps what it wrote, and a task stored but never queued would
-- answer every later send of its id as a duplicate that never runs. A key of another kind there fails the
-- whole call, naming the key. Two commands per call and three per queue, where taking the range first
-- cost a pass over every task of a bulk send.
local function badKey(key, want, fix)
  local found = redis.call('TYPE', key).ok
  return redis.error_reply('BADKEY ' .. key .. ' holds ' .. heldBy(key, found) .. ', not ' .. want .. ': ' .. fix)
end
if type(redis.pcall('INCRBY', p .. 'seq', 0)) ~= 'number' then
  return badKey(p .. 'seq', 'the integer counter that orders queued tasks',
    'a running worker sets it aside within a second and goes on above every queued task (start one if none runs), then send again')
end
local queuesType = redis.call('TYPE', p .. 'queues').ok
if queuesType ~= 'set' and queuesType ~= 'none' then
  return badKey(p .. 'queues', 'the set of queue names',
    'a running worker sets it aside within a second (start one if none runs), then send again')
end
local nQueues = tonumber(ARGV[2]) or 0
local firstTask = 3 + nQueues
if nQueues < 1 or (#ARGV - firstTask + 1) % 7 ~= 0 then
  return redis.error_reply('ERR enqueue: ARGV[2] must count the queue names that precede the tasks')
end
local queueKeys = {
  {'ready', 'zset', "the sorted set of the queue's ready tasks"},
  {'delayed', 'zset', "the sorted set of the queue's delayed tasks"},
  {'wake', 'list', "the list that wakes the queue's consumers"},
}
local listed = {}
for k = 3, firstTask - 1 do
  local q = ARGV[k]
  listed[q] = true
  for _, qk in ipairs(queueKeys) do
    local key = p .. 'q:' .. q .. ':' .. qk[1]
    local found = redis.call('TYPE', key).ok
    if found ~= 'none' and found ~= qk[2] then
      -- The sweep sets aside the keys of listed queues only; a queue name is no task, and listing it
      -- makes the refusal's fix true for a queue nothing was sent to yet.
      redis.call('SADD', p .. 'queues', q)
      return badKey(key, qk[3],
        'a running worker sets it aside within a second (start one if none runs), then send again')
    end
  end
end
-- A task's own key that a read refused (`reply`, a pcall's error): set aside when it holds another kind than
-- `want`, so this task is stored as if it were absent; anything else (or a key that was fine after all)
-- fails as the read would have. Only ever run on that error, never on the path of a good key.
local function taskKeyRefused(key, reply, kind, want, cost)
  if ownKeyRefused(p, key, kind, want, cost) then return nil end
  return redis.error_reply(reply.err)
end

-- Per queue: ready = {priority, id, ...} in send order, delayed = {dueAt, id, ...}.
local ready, delayed, touched = {}, {}, {}
local queueNames = {}
local readyCount = 0

for i = firstTask, #ARGV, 7 do
  local id, q, pr, payload = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local due, uniq, uniqFor = tonumber(ARGV[i + 4]), ARGV[i + 5], tonumber(ARGV[i + 6])
  local jk = p .. 'j:' .. id
  local existing = false
  if redis.call('EXISTS', jk) == 1 then
    local dead = redis.pcall('HMGET', jk, 'dr', 'q')
    if dead.err then
      -- Not a task (another program's data): this send stores the task in its place.
      local refused = taskKeyRefused(jk, dead, 'hash', 'a hash',
        'task ' .. id .. ', sent now, was stored in its place')
      if refused then return refused end
    elseif dead[1] and dead[2] then
      -- Dead-lettered: neither queued nor running, so this send queues it afresh and it leaves the
      -- dead-letter set (as on the embedded broker).
      -- pcall: a dead-letter set of another kind is no reason to refuse the send (recover.lua sets it aside).
      redis.pcall('ZREM', p .. 'q:' .. dead[2] .. ':dead', id)
      redis.call('DEL', jk)
    else
      existing = id
    end
  end
  if existing then
    -- already queued or running
  elseif uniq ~= '' then
    local uk = p .. 'u:' .. uniq
    local held = redis.pcall('GET', uk)
    if type(held) == 'table' then
      -- No task is known to hold the key: this one takes it.
      local refused = taskKeyRefused(uk, held, 'string', 'a string',
        'task ' .. id .. ', sent now with that unique key, took it')
      if refused then return refused end
      held = false
    end
    if held and redis.call('EXISTS', p .. 'j:' .. held) == 1 then
      existing = held
    elseif uniqFor > 0 then
      redis.call('SET', uk, id, 'PX', uniqFor)
    else
      redis.call('SET', uk, id)
    end
  end
  if existing then
    out[#out + 1] = (i - firstTask) / 7 + 1
    out[#out + 1] = existing
  else
    if not touched[q] then
      -- A queue the caller did not list was not checked: refuse it before this task is stored (tasks
      -- already stored in this call stay; only a caller that breaks the ARGV contract gets here).
      if not listed[q] then return redis.error_reply('ERR enqueue: queue ' .. q .. ' is not in the listed queues') end
      touched[q] = true
      queueNames[#queueNames + 1] = q
      ready[q] = {}
      delayed[q] = {}
    end
    -- An earlier run's result (a dead-lettered failure, an old success) would answer a waiter at once.
    redis.call('DEL', p .. 'r:' .. id)
    -- No 'u' field without a unique key: readers take a missing one as none.
    if uniq == '' then
      redis.call('HSET', jk, 'p', payload, 'q', q, 'pr', pr, 'd', 0)
    else
      redis.call('HSET', jk, 'p', payload, 'q', q, 'pr', pr, 'd', 0, 'u', uniq)
    end
    if due > now then
      local d = delayed[q]
      d[#d + 1] = due
      d[#d + 1] = id
    else
      local r = ready[q]
      r[#r + 1] = pr
      r[#r + 1] = id
      readyCount = readyCount + 1
    end
  end
end

if #queueNames == 0 then return out end

-- Variadic writes in chunks: unpack() is bounded by Lua's C stack (about 8000 values).
local CHUNK = 4000
local function variadic(cmd, key, list)
  for s = 1, #list, CHUNK do
    redis.call(cmd, key, unpack(list, s, math.min(s + CHUNK - 1, #list)))
  end
end

-- One sequence range for the whole call; scores are given out in send order, so FIFO within a priority
-- holds across and within calls. No key below can fail here: each was checked above, in this same script.
local seq = 0
if readyCount > 0 then seq = redis.call('INCRBY', p .. 'seq', readyCount) - readyCount end
redis.call('SADD', p .. 'queues', unpack(queueNames))
for _, q in ipairs(queueNames) do
  local qk = p .. 'q:' .. q
  local r = ready[q]
  if #r > 0 then
    local args = {}
    for k = 1, #r, 2 do
      seq = seq + 1
      args[#args + 1] = (9 - r[k]) * 1e14 + seq
      args[#args + 1] = r[k + 1]
    end
    variadic('ZADD', qk .. ':ready', args)
  end
  if #delayed[q] > 0 then variadic('ZADD', qk .. ':delayed', delayed[q]) end
  -- Delayed tasks wake a sleeper too, so it can shorten its wait to the new due time.
  if redis.call('LLEN', qk .. ':wake') == 0 then
    redis.call('LPUSH', qk .. ':wake', '1')
  end
end
return out
