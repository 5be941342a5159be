-- counters: add task counters that a MULTI of HINCRBYs (RedisTransport.publishActivity) could not, because
--   their per-minute key held another program's data. Run only then: the MULTI is the cheaper path.
-- KEYS[1]: not read (only routes the call on Redis Cluster).
-- Keys are built from the prefix ARGV[1] (see enqueue.lua).
-- ARGV[1] prefix, ARGV[2] ttlMs; then 3 per counter: minute, field, n (only those the MULTI refused, so
--   none is counted twice).
-- Guarantees: in one step each <p>m:<minute> key that is not a hash is renamed aside (reported in
--   <p>poisoned, which the next recovery sweep logs), then every counter is added and each minute's hash
--   lives ttlMs; the counts that key held before are not in the stats.
-- Returns: the number of keys set aside.
--#include bad_key
local p, ttl = ARGV[1], tonumber(ARGV[2])
local aside, seen = 0, {}
for i = 3, #ARGV, 3 do
  local key = p .. 'm:' .. ARGV[i]
  if not seen[key] then
    seen[key] = true
    local found = redis.call('TYPE', key).ok
    if found ~= 'hash' and found ~= 'none' then
      renameAside(p, key, found, 'a hash', "the task counters of that minute it held are not in qworker stats; new ones go to a new hash")
      aside = aside + 1
    end
  end
  redis.call('HINCRBY', key, ARGV[i + 1], ARGV[i + 2])
end
for key in pairs(seen) do redis.call('PEXPIRE', key, ttl) end
return aside
