-- requeue_dead: put dead-lettered tasks back on their queue.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] queue, ARGV[3..] ids ('*' alone = all of that queue's dead tasks).
-- Guarantees: each task leaves <q>:dead and enters <q>:ready in one step, with its delivery count and
--   dead-letter reason cleared, so it gets a full set of deliveries again, and its failure result deleted,
--   so a waiter sees the new run's outcome. Ids with no stored task
--   (poisoned entries) are dropped from the dead set instead, since there is nothing to run. So are ids
--   whose task hash <p>j:<id> holds another kind of data (another program's): the hash is renamed aside
--   (lib/bad_key.lua, kept for a person to inspect, reported in <p>poisoned for the next sweep to log)
--   rather than failing the command part-way, with the tasks before it requeued and the rest not. No extra
--   command while the hash is good (pcall on the read).
-- Returns: number of tasks requeued.
--#include bad_key
local p, q = ARGV[1], ARGV[2]
local qk = p .. 'q:' .. q
local ids = {}
if ARGV[3] == '*' then
  ids = redis.call('ZRANGE', qk .. ':dead', 0, -1)
else
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', qk .. ':dead', id) == 1 then
    local jk = p .. 'j:' .. id
    local fields = redis.pcall('HMGET', jk, 'p', 'pr')
    if fields.err then
      local cost = 'task ' .. id .. "'s record (payload) is lost, so there was nothing to requeue; its dead-letter entry was dropped"
      if not ownKeyRefused(p, jk, 'hash', 'a hash', cost) then redis.call('HMGET', jk, 'p', 'pr') end
      fields = {}
    end
    if fields[1] then
      redis.call('HDEL', jk, 'dr', 'da', 'de')
      redis.call('HSET', jk, 'd', 0)
      redis.call('DEL', p .. 'r:' .. id)
      redis.call('ZADD', qk .. ':ready', (9 - (tonumber(fields[2]) or 0)) * 1e14 + redis.call('INCR', p .. 'seq'), id)
      n = n + 1
    else
      redis.call('DEL', jk)
    end
  end
end
if n > 0 and redis.call('LLEN', qk .. ':wake') == 0 then redis.call('LPUSH', qk .. ':wake', '1') end
return n
