-- purge: empty a queue's ready and delayed tasks (and its dead-letter set when asked).
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] queue, ARGV[3] '1' to purge dead-letter too.
-- Guarantees: running (leased) tasks are left alone, so purging never strands a worker's lease; each
--   removed task's data goes with it in the same step.
-- Returns: number of tasks removed.
local p, q, withDead = ARGV[1], ARGV[2], ARGV[3] == '1'
local qk = p .. 'q:' .. q
local sets = {qk .. ':ready', qk .. ':delayed'}
if withDead then sets[3] = qk .. ':dead' end
local n = 0
for _, key in ipairs(sets) do
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    redis.call('DEL', p .. 'j:' .. id)
    n = n + 1
  end
  redis.call('DEL', key)
end
return n
