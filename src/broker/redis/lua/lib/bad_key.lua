-- Included (--#include bad_key) by recover and enqueue, which report a qworker key that holds data of
-- another kind (another program writing under the prefix, a hand-typed command). Not a script of its own.
-- heldBy(key, found): what the key holds, short enough for one log line: 'a list', 'the string "abc"'.
-- isCounter(v): whether INCR accepts the string v. Redis refuses '01', '+1', '-0' and spaces; 18 characters
--   at most keeps the pattern from accepting a number past the 64-bit range (which INCR refuses too).
local function heldBy(key, found)
  if found ~= 'string' then return 'a ' .. found end
  local v = redis.call('GET', key)
  if #v > 40 then v = string.sub(v, 1, 40) .. '...' end
  return 'the string "' .. string.gsub(v, '%c', '?') .. '"'
end

local function isCounter(v)
  return v == '0' or (#v <= 18 and string.match(v, '^%-?[1-9]%d*$') ~= nil)
end
