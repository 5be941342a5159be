-- celery_store: store an intermediate Celery state (STARTED) for a message while keeping its lease.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- qworker keys are built from the prefix ARGV[1] (see enqueue.lua); Celery's result
--   key is passed in ARGV.
-- ARGV[1] prefix, ARGV[2] leaseId, ARGV[3] token, ARGV[4] resultKey, ARGV[5] metaJson,
--   ARGV[6] ttlSeconds (0 = no expiry).
-- Guarantees: written only while the caller still holds the lease, so a late STARTED can never land
--   after the final state (settling deletes the token first); a stored SUCCESS is never overwritten.
-- Returns: 1 if stored, 0 if the lease is gone or SUCCESS is already stored.
--#include celery_result
local p, id, token, rk, meta, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
if redis.call('HGET', p .. 'j:' .. id, 't') ~= token then return 0 end
return storeCeleryResult(rk, meta, ttl) and 1 or 0
