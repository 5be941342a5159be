-- Included (--#include celery_result) by the Celery scripts that write a result: celery_settle,
-- celery_retry and celery_store. Not a script of its own.
-- storeCeleryResult(rk, meta, ttl): SET Celery's result meta at rk (with EX ttl when ttl > 0) and PUBLISH it
--   on rk's own channel (AsyncResult.get() waits on it), unless a SUCCESS is already stored there: like
--   Celery, a late or duplicate state never replaces a success. Returns true if it stored.
local function storeCeleryResult(rk, meta, ttl)
  local old = redis.call('GET', rk)
  if old then
    local ok, prev = pcall(cjson.decode, old)
    if ok and type(prev) == 'table' and prev.status == 'SUCCESS' then return false end
  end
  if ttl > 0 then redis.call('SET', rk, meta, 'EX', ttl) else redis.call('SET', rk, meta) end
  redis.call('PUBLISH', rk, meta)
  return true
end
