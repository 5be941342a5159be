-- Included (--#include worker_jobs, after --#include bad_key) by the scripts that read or write a worker's
-- set of leases <p>w:<worker>:jobs. Not a script of its own.
-- jobsCall(p, worker, cmd, ...): redis.call(cmd, <p>w:<worker>:jobs, ...), except that a key of another
--   kind there (another program's data) is first set aside and the set listed again, instead of failing
--   the script part-way (Redis keeps what a script wrote before it failed) and every later call of the
--   worker's, which only a person could end. The check costs nothing while the key is good: the command
--   itself finds the key bad.
--   The set is listed again from every known queue's active set (each task whose hash names the worker):
--   extend_worker.lua renews the leases in it and recover.lua puts a dead worker's tasks back from it, so
--   losing it would let a running task's lease run out (and the task run twice). That pass is paid once,
--   on the repair. The report goes to <p>poisoned, which the next recovery sweep logs, one line.
local function relistJobs(p, worker, key)
  local n = 0
  local queues = redis.pcall('SMEMBERS', p .. 'queues')
  if queues.err then return nil end
  for _, q in ipairs(queues) do
    local ids = redis.pcall('ZRANGE', p .. 'q:' .. q .. ':active', 0, -1)
    if not ids.err then
      for _, id in ipairs(ids) do
        if redis.pcall('HGET', p .. 'j:' .. id, 'w') == worker then
          redis.call('SADD', key, id)
          n = n + 1
        end
      end
    end
  end
  return n
end

local function jobsCall(p, worker, cmd, ...)
  local key = p .. 'w:' .. worker .. ':jobs'
  local r = redis.pcall(cmd, key, ...)
  if type(r) ~= 'table' or not r.err then return r end
  local found = redis.call('TYPE', key).ok
  if found ~= 'set' and found ~= 'none' then
    renameAside(p, key, found, 'a set', function()
      local n = relistJobs(p, worker, key)
      if not n then return 'its leases could not be listed again (the queue set is bad too): they come back to their queues when they expire' end
      return "the worker's leases were listed again from the active tasks (" .. n .. ' found), so they are still renewed'
    end)
  end
  -- Anything else (or a key that was fine after all) fails as it would have.
  return redis.call(cmd, key, ...)
end
