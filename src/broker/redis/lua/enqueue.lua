-- enqueue: add tasks to their queues (ready, or delayed when due later).
-- KEYS: none declared; every key is built from the prefix in ARGV[1] (a hash-tagged prefix such as
--   "{qw}:" keeps them all in one Cluster slot).
-- ARGV[1] prefix; then 7 per task: id, queue, priority (0..9), payload, dueAt (ms, 0 = now),
--   uniqueKey ('' = none), uniqueForMs (0 = until settled).
-- Keys touched: <p>queues (set), <p>j:<id> (hash: p payload, q queue, pr priority, d deliveries),
--   <p>q:<queue>:ready (zset, score = (9-priority)*1e14 + seq), <p>q:<queue>:delayed (zset, score = dueAt),
--   <p>q:<queue>:wake (list, at most one marker), <p>u:<uniqueKey> (string), <p>seq (counter).
-- Guarantees: each task is stored and queued in one step, or not at all when its id is already stored
--   (a re-sent id never makes a second copy of a queued or running task) or its unique key is held by a
--   task that still exists; then the existing id is returned. One wake marker wakes a blocked consumer.
-- Returns: flat list {id, duplicate(0|1), ...} in input order.
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 2, #ARGV, 7 do
  local id, q, pr, payload = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local due, uniq, uniqFor = tonumber(ARGV[i + 4]), ARGV[i + 5], tonumber(ARGV[i + 6])
  local existing = false
  if redis.call('EXISTS', p .. 'j:' .. id) == 1 then
    existing = id
  elseif uniq ~= '' then
    local uk = p .. 'u:' .. uniq
    local held = redis.call('GET', uk)
    if held and redis.call('EXISTS', p .. 'j:' .. held) == 1 then
      existing = held
    elseif uniqFor > 0 then
      redis.call('SET', uk, id, 'PX', uniqFor)
    else
      redis.call('SET', uk, id)
    end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 1
  else
    local qk = p .. 'q:' .. q
    redis.call('SADD', p .. 'queues', q)
    redis.call('HSET', p .. 'j:' .. id, 'p', payload, 'q', q, 'pr', pr, 'd', 0, 'u', uniq)
    if due > now then
      redis.call('ZADD', qk .. ':delayed', due, id)
    else
      redis.call('ZADD', qk .. ':ready', (9 - pr) * 1e14 + redis.call('INCR', p .. 'seq'), id)
    end
    -- Delayed tasks wake a sleeper too, so it can shorten its wait to the new due time.
    if redis.call('LLEN', qk .. ':wake') == 0 then
      redis.call('LPUSH', qk .. ':wake', '1')
    end
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
return out
