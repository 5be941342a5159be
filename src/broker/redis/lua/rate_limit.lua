-- rate_limit: a global rate limit shared by every worker, as one run slot per interval (a token bucket of
--   capacity 1, like Celery's per-worker limit, but counted in Redis so all workers share it).
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua):
--   <p>rl:<name>          the next free slot time (ms, Redis server time)
--   <p>rl:<name>:s:<id>   the slot reserved for task <id>, which its worker sent back to wait for it
-- ARGV[1] prefix, ARGV[2] limit name (the task name), ARGV[3] interval ms, ARGV[4] task id.
-- Guarantees: each slot is handed out once, so across all workers at most one run of <name> is admitted
--   per interval of Redis server time. A task gets a definite slot on its first call, so a waiting task
--   costs one more call when it comes back, not one per poll. A reserved slot is only good until
--   max(interval, 50 ms) after its time; a task back later forfeits it and takes a new one, so tasks
--   delayed by a busy machine or an outage cannot run in a burst: any window of N intervals admits at
--   most N + 1 runs (the 50 ms floor keeps very high rates from forfeiting on ordinary scheduling delay).
-- Returns: 0 when the task may run now, else the ms until its reserved slot.
local p, name, interval, id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = p .. 'rl:' .. name
local slotKey = key .. ':s:' .. id
local late = math.max(interval, 50)

local held = tonumber(redis.call('GET', slotKey) or '')
if held then
  if held > now then return held - now end
  redis.call('DEL', slotKey)
  if now - held <= late then return 0 end
end

local nextFree = tonumber(redis.call('GET', key) or '0') or 0
local slot = math.max(nextFree, now)
redis.call('SET', key, slot + interval, 'PX', slot + interval - now + 1000)
if slot <= now then return 0 end
redis.call('SET', slotKey, slot, 'PX', slot - now + late)
return slot - now
