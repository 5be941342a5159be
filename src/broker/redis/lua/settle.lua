-- settle: finish leased tasks (success, failure, revoked, expired), optionally dead-lettering them.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix; then records, each led by its kind:
--   'P', queue, n, then n x (id, token): plain tasks of that queue (no result to store, not dead, no
--     unique key named by the caller; a unique key kept in the task hash is still released);
--   'F', id, token, queue, result ('' = store none), resultTtlMs (<= 0: no expiry), deadReason ('' = not
--     dead), uniqueKey ('' = none), deadError ('' = none; kept with a dead task, as dead_letter.lua keeps it).
-- Guarantees: only the holder of the task's current token can settle it, so a worker whose lease was
--   recovered cannot finish the task twice (nor can an id repeated in one call). In one step the task
--   leaves <q>:active and the worker's set, its result (if any) is stored with its TTL and published on
--   channel <p>r:<id>, its unique key is released, and it is either deleted or kept in <q>:dead with
--   reason, error and time. Tokens are all checked before anything is written, and the set and sorted-set
--   removals and deletes are one command per key for the whole call (far cheaper than one per task).
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is a task's own key of another kind (renamed aside by lib/bad_key.lua, reported in <p>poisoned): a
--   failed call is retried by the worker with the same batch, so one such key kept every task of that
--   worker unacknowledged (and run again once its lease ran out). A unique key <p>u:<key> of another kind
--   costs nothing (its task is done with it). A task hash <p>j:<id> of another kind was written over after
--   the task was leased: its token is lost with it, so the task is settled as its worker reports if it is
--   still in <q>:active (its result stored and published, the unique key named in the call released, a
--   dead one kept in <q>:dead with reason, error and time but no payload; only the first such settle finds
--   it), and rejected if not. Neither check costs a command while the keys are good (pcall on the read).
-- Returns: the 0-based positions (counting tasks in the order sent) of the tasks NOT settled (token no
--   longer valid, an id already settled earlier in this call, or a task hash of another kind whose task is
--   no longer leased); empty when all were settled.
--#include bad_key
--#include worker_jobs
local p = ARGV[1]
local argc = #ARGV
local seen, rejected = {}, {}
local active, queues = {}, {}
local held, workers = {}, {}
local gone, extra = {}, {}
local pos = -1

-- The list for `key` in `lists`, made (and its key appended to `order`) on first use.
local function listFor(lists, order, key)
  local l = lists[key]
  if not l then
    l = {}
    lists[key] = l
    order[#order + 1] = key
  end
  return l
end

-- Task ids whose hash held another kind of data (set aside in pass 1): settled without their record.
local lost = {}

-- The task's hash holds another kind of data (another program wrote over it after the task was leased):
-- the token it kept is gone with it. Set aside (lib/bad_key.lua) rather than failing the whole call, which
-- the worker would retry with the same task forever, its other tasks never acknowledged. Still leased
-- (in <q>:active): settled as its worker reports, the only record of its run left; no longer leased (the
-- sweep took the lease back): rejected, as a lost lease is. An id repeated in the call is rejected.
local function lostRecord(jk, id, token, q)
  seen[id] = true
  local leased = lostTaskHash(p, jk, id, q,
    'task ' .. id .. "'s record (payload, delivery count) is lost; its outcome was recorded as its worker reported it",
    'task ' .. id .. "'s record is lost; it was no longer leased, so its worker's outcome was not recorded")
  if not leased then return false end
  lost[id] = true
  return {token}
end

local function take(id, token, q, result, ttl, deadReason, uniq, deadError)
  pos = pos + 1
  local jk = p .. 'j:' .. id
  local f = not seen[id] and redis.pcall('HMGET', jk, 't', 'w', 'u')
  if f and f.err then f = lostRecord(jk, id, token, q) end
  if not f or f[1] ~= token then
    rejected[#rejected + 1] = pos
    return
  end
  seen[id] = true
  local a = listFor(active, queues, q)
  a[#a + 1] = id
  local w = f[2]
  if w then
    local h = listFor(held, workers, w)
    h[#h + 1] = id
  end
  if uniq == '' and f[3] then uniq = f[3] end
  if deadReason == '' then gone[#gone + 1] = jk end
  if result ~= '' or deadReason ~= '' or uniq ~= '' then
    extra[#extra + 1] = {id, q, result, ttl, deadReason, uniq, deadError}
  end
end

-- Pass 1 only reads (but for setting aside a task hash of another kind, a repair that stands on its own), so a
-- malformed call fails before anything changed.
local i = 2
while i <= argc do
  local kind = ARGV[i]
  if kind == 'P' then
    local q, n = ARGV[i + 1], tonumber(ARGV[i + 2])
    if not n or i + 2 + 2 * n > argc then return redis.error_reply('ERR settle: truncated P record') end
    for j = i + 3, i + 2 + 2 * n, 2 do take(ARGV[j], ARGV[j + 1], q, '', 0, '', '', '') end
    i = i + 3 + 2 * n
  elseif kind == 'F' then
    if i + 8 > argc then return redis.error_reply('ERR settle: truncated F record') end
    take(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5]) or 0, ARGV[i + 6], ARGV[i + 7], ARGV[i + 8])
    i = i + 9
  else
    return redis.error_reply('ERR settle: unknown record kind ' .. tostring(kind))
  end
end

-- Pass 2: unpack in chunks stays below Lua's limit on the number of values it can pass to a call.
local CHUNK = 1000
local function many(cmd, key, list)
  for k = 1, #list, CHUNK do
    local last = math.min(k + CHUNK - 1, #list)
    if key then redis.call(cmd, key, unpack(list, k, last)) else redis.call(cmd, unpack(list, k, last)) end
  end
end
for _, q in ipairs(queues) do many('ZREM', p .. 'q:' .. q .. ':active', active[q]) end
for _, w in ipairs(workers) do
  local h = held[w]
  for k = 1, #h, CHUNK do jobsCall(p, w, 'SREM', unpack(h, k, math.min(k + CHUNK - 1, #h))) end
end
if #gone > 0 then many('DEL', nil, gone) end
local now
for _, e in ipairs(extra) do
  local id, q, result, ttl, deadReason, uniq, deadError = e[1], e[2], e[3], e[4], e[5], e[6], e[7]
  if deadReason ~= '' then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local jk = p .. 'j:' .. id
    redis.call('HDEL', jk, 't', 'w', 's')
    -- A task whose record was set aside is kept with what is known (no payload: requeue_dead drops it).
    if lost[id] then redis.call('HSET', jk, 'q', q, 'd', 0) end
    redis.call('HSET', jk, 'dr', deadReason, 'da', now)
    if deadError ~= '' then redis.call('HSET', jk, 'de', deadError) end
    redis.call('ZADD', p .. 'q:' .. q .. ':dead', now, id)
  end
  if result ~= '' then
    local rk = p .. 'r:' .. id
    if ttl > 0 then redis.call('SET', rk, result, 'PX', ttl) else redis.call('SET', rk, result) end
    redis.call('PUBLISH', rk, result)
  end
  if uniq ~= '' then releaseUnique(p, uniq, id, 'its task has finished, which frees the key: nothing is lost') end
end
return rejected
