-- celery_settle: finish leased Celery messages, storing their result in Celery's format.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- qworker keys are built from the prefix ARGV[1] (see enqueue.lua); Celery's result
--   keys (celery-task-meta-<id>, unprefixed) are passed in ARGV.
-- ARGV[1] prefix; then 7 per message: leaseId, token, queue, resultKey ('' = store nothing),
--   metaJson, ttlSeconds (0 = no expiry), deadReason ('' = delete the message).
-- Guarantees: only the holder of the current token settles, so a worker whose lease was recovered
--   cannot store a second outcome. In one step the lease leaves <q>:active and the worker's set, the
--   meta is SET (with EX when ttl > 0) and PUBLISHed on the key's own channel (AsyncResult.get() waits
--   on the PUBLISH), and the message is deleted or kept in <q>:dead with the reason. Like Celery, a
--   stored SUCCESS is never overwritten (a duplicate delivery cannot turn success into failure).
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
--   So is a lease's hash <p>j:<leaseId> of another kind (written over after the message was claimed;
--   renamed aside by lib/bad_key.lua, reported in <p>poisoned), rather than failing the call part-way with
--   the messages before it settled, as settle.lua does: its token is lost with it, so a message still in
--   <q>:active is settled as its worker reports (its meta stored; a dead one kept in <q>:dead with the
--   reason but no envelope), and one that is not is left out as a lost lease. No extra command while the
--   hash is good (pcall on the read).
-- Returns: the lease ids that were settled (token valid, or still leased when the hash was lost).
--#include bad_key
--#include worker_jobs
--#include celery_result
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local done = {}
for i = 2, #ARGV, 7 do
  local id, token, q, rk = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local meta, ttl, deadReason = ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6]
  local jk = p .. 'j:' .. id
  local fields = redis.pcall('HMGET', jk, 't', 'w')
  local lost = fields.err ~= nil
  if lost then
    local leased = lostTaskHash(p, jk, id, q,
      'Celery message ' .. id .. "'s lease record (envelope) is lost; its outcome was recorded as its worker reported it",
      'Celery message ' .. id .. "'s lease record is lost; it was no longer leased, so its worker's outcome was not recorded")
    fields = leased and {token, false} or {}
  end
  if fields[1] == token then
    local qk = p .. 'q:' .. q
    redis.call('ZREM', qk .. ':active', id)
    if fields[2] then jobsCall(p, fields[2], 'SREM', id) end
    if deadReason ~= '' then
      redis.call('HDEL', jk, 't', 'w', 's')
      if lost then redis.call('HSET', jk, 'q', q, 'd', 0) end
      redis.call('HSET', jk, 'dr', deadReason, 'da', now)
      redis.call('ZADD', qk .. ':dead', now, id)
    else
      redis.call('DEL', jk)
    end
    if rk ~= '' then storeCeleryResult(rk, meta, ttl) end
    done[#done + 1] = id
  end
end
return done
