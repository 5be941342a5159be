-- purge: empty a queue's ready and delayed tasks (and its dead-letter set when asked), a bounded number
-- per call.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] queue, ARGV[3] '1' to purge dead-letter too, ARGV[4] most tasks removed by this call.
-- Guarantees: running (leased) tasks are left alone, so purging never strands a worker's lease; each
--   removed task's data goes with it in the same step. At most ARGV[4] tasks go per call, so a large queue
--   is purged in steps that each hold Redis up briefly (one script of a million deletes would block every
--   worker for seconds); the caller repeats until a call removes fewer than that.
-- Returns: number of tasks removed by this call.
local p, q, withDead, limit = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local qk = p .. 'q:' .. q
local sets = {qk .. ':ready', qk .. ':delayed'}
if withDead then sets[3] = qk .. ':dead' end
local n = 0
for _, key in ipairs(sets) do
  if n >= limit then break end
  local ids = redis.call('ZRANGE', key, 0, limit - n - 1)
  for _, id in ipairs(ids) do
    redis.call('DEL', p .. 'j:' .. id)
  end
  -- The ids are the set's first #ids by rank, and nothing else ran meanwhile: remove them by rank.
  if #ids > 0 then redis.call('ZREMRANGEBYRANK', key, 0, #ids - 1) end
  n = n + #ids
end
return n
