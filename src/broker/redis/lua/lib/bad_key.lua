-- Included (--#include bad_key) by the scripts that report a qworker key that holds data of another kind
-- (another program writing under the prefix, a hand-typed command). Not a script of its own.
-- heldBy(key, found): what the key holds, short enough for one log line: 'a list', 'the string "abc"'.
-- isCounter(v): whether INCR accepts the string v. Redis refuses '01', '+1', '-0' and spaces; 18 characters
--   at most keeps the pattern from accepting a number past the 64-bit range (which INCR refuses too).
-- renameAside(p, key, found, want, cost): renames the key to <key>:poisoned:<ms>, keeping the bad value for
--   a person to inspect, and reports it in <p>poisoned (the next recovery sweep logs it, one line); `cost`
--   says what was lost, or is a function that says so once it has run (after the rename). Returns the name.
local function heldBy(key, found)
  if found ~= 'string' then return 'a ' .. found end
  local v = redis.call('GET', key)
  if #v > 40 then v = string.sub(v, 1, 40) .. '...' end
  return 'the string "' .. string.gsub(v, '%c', '?') .. '"'
end

local function isCounter(v)
  return v == '0' or (#v <= 18 and string.match(v, '^%-?[1-9]%d*$') ~= nil)
end

local function renameAside(p, key, found, want, cost)
  local held = heldBy(key, found)
  local t = redis.call('TIME')
  local aside = key .. ':poisoned:' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('RENAME', key, aside)
  if type(cost) == 'function' then cost = cost() end
  -- pcall: a report list of another kind loses this line (the sweep sets that list aside), not the repair.
  redis.pcall('RPUSH', p .. 'poisoned', key .. ' held ' .. held .. ', not ' .. want .. '; renamed to ' .. aside ..
    ' (inspect it, then DEL it); ' .. cost)
  return aside
end
