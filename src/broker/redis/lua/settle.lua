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
-- Returns: the 0-based positions (counting tasks in the order sent) of the tasks NOT settled (token no
--   longer valid, or an id already settled earlier in this call); empty when all were settled.
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

local function take(id, token, q, result, ttl, deadReason, uniq, deadError)
  pos = pos + 1
  local jk = p .. 'j:' .. id
  local f = not seen[id] and redis.call('HMGET', jk, 't', 'w', 'u')
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

-- Pass 1 only reads, so a malformed call fails before anything changed.
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
    redis.call('HSET', jk, 'dr', deadReason, 'da', now)
    if deadError ~= '' then redis.call('HSET', jk, 'de', deadError) end
    redis.call('ZADD', p .. 'q:' .. q .. ':dead', now, id)
  end
  if result ~= '' then
    local rk = p .. 'r:' .. id
    if ttl > 0 then redis.call('SET', rk, result, 'PX', ttl) else redis.call('SET', rk, result) end
    redis.call('PUBLISH', rk, result)
  end
  if uniq ~= '' and redis.call('GET', p .. 'u:' .. uniq) == id then
    redis.call('DEL', p .. 'u:' .. uniq)
  end
end
return rejected
