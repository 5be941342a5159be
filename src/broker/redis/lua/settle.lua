-- settle: finish leased tasks (success, failure, revoked, expired), optionally dead-lettering them.
-- KEYS: none declared; keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix; then 7 per task: id, token, queue, result ('' = store none), resultTtlMs (<= 0: no expiry),
--   deadReason ('' = not dead), uniqueKey ('' = none).
-- Guarantees: only the holder of the task's current token can settle it, so a worker whose lease was
--   recovered cannot finish the task twice. In one step the task leaves <q>:active and the worker's set,
--   its result (if any) is stored with its TTL and published on channel <p>r:<id>, its unique key is
--   released, and it is either deleted or kept in <q>:dead with reason and time.
-- Returns: the ids that were settled (token valid).
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local done = {}
for i = 2, #ARGV, 7 do
  local id, token, q, result = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ttl, deadReason, uniq = tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6]
  local jk = p .. 'j:' .. id
  local fields = redis.call('HMGET', jk, 't', 'w', 'u')
  if fields[1] == token then
    if uniq == '' and fields[3] then uniq = fields[3] end
    local qk = p .. 'q:' .. q
    redis.call('ZREM', qk .. ':active', id)
    if fields[2] then redis.call('SREM', p .. 'w:' .. fields[2] .. ':jobs', id) end
    if deadReason ~= '' then
      redis.call('HDEL', jk, 't', 'w', 's')
      redis.call('HSET', jk, 'dr', deadReason, 'da', now)
      redis.call('ZADD', qk .. ':dead', now, id)
    else
      redis.call('DEL', jk)
    end
    if result ~= '' then
      local rk = p .. 'r:' .. id
      if ttl > 0 then redis.call('SET', rk, result, 'PX', ttl) else redis.call('SET', rk, result) end
      redis.call('PUBLISH', rk, result)
    end
    if uniq ~= '' and redis.call('GET', p .. 'u:' .. uniq) == id then
      redis.call('DEL', p .. 'u:' .. uniq)
    end
    done[#done + 1] = id
  end
end
return done
