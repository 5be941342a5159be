-- heartbeat: record that a worker is alive, stamped with Redis server time.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] workerId, ARGV[3] info JSON, ARGV[4] ttlMs.
-- Guarantees: every worker's liveness is judged by one clock (the Redis server's), so a worker with a
--   skewed clock is neither declared dead early nor kept alive late by recover.lua. The info key lives
--   exactly ttlMs, so a worker whose heartbeat lapsed is no longer listed even before recover runs.
-- Returns: the server time in ms.
local p, w, info, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- pcall: a workers key of another type is set aside by recover.lua within a second, and the next beat lands;
-- failing here would only stop the beat's own key below and report the broker as failing.
redis.pcall('ZADD', p .. 'workers', now, w)
redis.call('SET', p .. 'w:' .. w, info, 'PX', ttl)
return now
