-- celery_claim: move Celery messages from kombu's Redis lists into qworker leases, atomically.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- qworker keys are built from the prefix ARGV[1] (see enqueue.lua); kombu's list
--   keys have their own naming (no prefix, 0x06 0x16 priority suffix) and are passed in ARGV.
-- ARGV[1] prefix, ARGV[2] workerId, ARGV[3] max, ARGV[4] leaseMs, ARGV[5] lease-id prefix (unique per
--   call, also used for tokens), then 3 per list: kombuListKey, qworkerQueue, priority (0..9, qworker's
--   order: higher first), given in kombu's BRPOP order (priority step first, then queue).
-- Guarantees: each message RPOPped (the end kombu consumers read) is, in the same step, stored as
--   <p>j:<leaseId> {p raw envelope, q queue, pr priority, d 1, t token, w worker, s now, src list} and
--   leased in <p>q:<queue>:active and <p>w:<worker>:jobs, exactly like reserve.lua leaves a native task.
--   So there is no moment at which a popped message exists only in a worker's memory: from here on
--   extend/recover/release/dead_letter keep it, and a recovered message goes to <p>q:<queue>:ready,
--   not back to kombu. The message is not parsed here (no JSON work inside Redis); the worker decodes it
--   and settles bad ones through celery_settle with a dead-letter reason. The queue joins <p>queues so
--   recover.lua sweeps its expired leases.
--   A worker's set of another kind is set aside and listed again (lib/worker_jobs.lua), not a failure.
-- Returns: {now, leaseId, queue, payload, token, deliveries, leaseUntil, ...}
--#include bad_key
--#include worker_jobs
local p, worker = ARGV[1], ARGV[2]
local max, leaseMs, idPrefix = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseUntil = now + leaseMs
local out = {now}
local n = 0
local known = {}
for i = 6, #ARGV, 3 do
  if n >= max then break end
  local list, q, pr = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  while n < max do
    local raw = redis.call('RPOP', list)
    if not raw then break end
    n = n + 1
    local id = 'celery:' .. idPrefix .. n
    local token = idPrefix .. n
    local jk = p .. 'j:' .. id
    redis.call('HSET', jk, 'p', raw, 'q', q, 'pr', pr, 'd', 1, 't', token, 'w', worker, 's', now, 'src', list)
    redis.call('ZADD', p .. 'q:' .. q .. ':active', leaseUntil, id)
    jobsCall(p, worker, 'SADD', id)
    if not known[q] then
      redis.call('SADD', p .. 'queues', q)
      known[q] = true
    end
    out[#out + 1] = id
    out[#out + 1] = q
    out[#out + 1] = raw
    out[#out + 1] = token
    out[#out + 1] = 1
    out[#out + 1] = leaseUntil
  end
end
return out
