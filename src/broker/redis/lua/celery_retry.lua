-- celery_retry: retry a leased Celery message the way a Celery worker does.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- qworker keys are built from the prefix ARGV[1] (see enqueue.lua); kombu's list
--   key and Celery's result key are passed in ARGV.
-- ARGV[1] prefix, ARGV[2] leaseId, ARGV[3] token, ARGV[4] queue, ARGV[5] kombuListKey,
--   ARGV[6] new envelope (same task id, retries + 1, eta), ARGV[7] resultKey, ARGV[8] RETRY metaJson,
--   ARGV[9] ttlSeconds (0 = no expiry).
-- Guarantees: only the current token holder can retry. In one step the new message is LPUSHed to
--   kombu's list (so any consumer of the queue, Celery or qworker, may run the retry, as with Celery),
--   the RETRY state is stored and PUBLISHed (unless SUCCESS is already stored) and the lease is dropped:
--   a crash can neither lose the retry nor run the old attempt again next to it.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is the lease's hash <p>j:<leaseId> of another kind (written over after the message was claimed;
--   renamed aside by lib/bad_key.lua, reported in <p>poisoned), which failed the call: its token is lost
--   with it, so a message still in <q>:active is retried all the same (the new envelope comes with the
--   call; nothing of the old record is needed), and one that is not is refused as a lost lease. No extra
--   command while the hash is good (pcall on the read).
-- Returns: 1 if retried, 0 if the token was no longer valid.
--#include bad_key
--#include worker_jobs
--#include celery_result
local p, id, token, q = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local list, envelope, rk, meta, ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local jk = p .. 'j:' .. id
local fields = redis.pcall('HMGET', jk, 't', 'w')
if fields.err then
  local leased = lostTaskHash(p, jk, id, q,
    'Celery message ' .. id .. "'s lease record is lost; it was retried with the envelope its worker sent",
    'Celery message ' .. id .. "'s lease record is lost; it was no longer leased, so its worker's retry was not sent")
  if not leased then return 0 end
  fields = {token, false}
end
if fields[1] ~= token then return 0 end
redis.call('ZREM', p .. 'q:' .. q .. ':active', id)
if fields[2] then jobsCall(p, fields[2], 'SREM', id) end
redis.call('DEL', jk)
redis.call('LPUSH', list, envelope)
storeCeleryResult(rk, meta, ttl)
return 1
