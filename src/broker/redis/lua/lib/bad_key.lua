-- Included (--#include bad_key) by the scripts that report a qworker key that holds data of another kind
-- (another program writing under the prefix, a hand-typed command). Not a script of its own.
-- heldBy(key, found): what the key holds, short enough for one log line: 'a list', 'the string "abc"'.
-- isCounter(v): whether INCR accepts the string v. Redis refuses '01', '+1', '-0' and spaces; 18 characters
--   at most keeps the pattern from accepting a number past the 64-bit range (which INCR refuses too).
-- moveAside(key, ms): renames the key to <key>:poisoned:<ms>, or, when that name is taken (the same key set
--   aside twice in one millisecond), to <key>:poisoned:<ms>-2, -3, ...: RENAMENX, so an earlier bad value
--   kept for a person to inspect is never overwritten. Returns the name.
-- renameAside(p, key, found, want, cost): moves the key aside (moveAside), keeping the bad value for
--   a person to inspect, and reports it in <p>poisoned (the next recovery sweep logs it, one line); `cost`
--   says what was lost, or is a function that says so once it has run (after the rename). Returns the name.
-- ownKeyRefused(p, key, kind, want, cost): for a read of one of a task's own keys (<p>j:<id>, <p>u:<unique
--   key>) that Redis refused: when the key holds another kind than `kind`, renames it aside (renameAside,
--   with `want` and `cost`) and returns the new name, so the caller goes on as if the key were absent
--   instead of failing part-way (Redis keeps what a script wrote before it failed, and the caller's retry
--   meets the same key); otherwise (the key is fine after all) returns nil, and the caller fails as the
--   read would have. Called only on that error: a good key costs no command.
-- lostTaskHash(p, jk, id, q, ifLeased, ifNot): for a read of the task hash jk = <p>j:<id> that Redis refused.
--   The hash was written over after the task was leased, and its token with it: whether the task is still
--   in <p>q:<q>:active stands in for the token. Sets the hash aside (ownKeyRefused) with the cost that
--   applies, `ifLeased` or `ifNot`, and returns whether the task is still leased and the aside name; a hash
--   that was fine after all fails as the read would have.
-- releaseUnique(p, uniq, id, cost): frees <p>u:<uniq> if it names task `id` (which no longer needs it);
--   one of another kind is set aside (ownKeyRefused; `cost`, what that loses: nothing, as the task is done
--   with the key). A pcall'd GET, so no extra command while the key is good.
local function heldBy(key, found)
  if found ~= 'string' then return 'a ' .. found end
  local v = redis.call('GET', key)
  if #v > 40 then v = string.sub(v, 1, 40) .. '...' end
  return 'the string "' .. string.gsub(v, '%c', '?') .. '"'
end

local function isCounter(v)
  return v == '0' or (#v <= 18 and string.match(v, '^%-?[1-9]%d*$') ~= nil)
end

local function moveAside(key, ms)
  local base = key .. ':poisoned:' .. ms
  local aside, n = base, 1
  while redis.call('RENAMENX', key, aside) == 0 do
    n = n + 1
    aside = base .. '-' .. n
  end
  return aside
end

local function renameAside(p, key, found, want, cost)
  local held = heldBy(key, found)
  local t = redis.call('TIME')
  local aside = moveAside(key, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  if type(cost) == 'function' then cost = cost() end
  -- pcall: a report list of another kind loses this line (the sweep sets that list aside), not the repair.
  redis.pcall('RPUSH', p .. 'poisoned', key .. ' held ' .. held .. ', not ' .. want .. '; renamed to ' .. aside ..
    ' (inspect it, then DEL it); ' .. cost)
  return aside
end


local function ownKeyRefused(p, key, kind, want, cost)
  local found = redis.call('TYPE', key).ok
  if found == 'none' or found == kind then return nil end
  return renameAside(p, key, found, want, cost)
end

local function lostTaskHash(p, jk, id, q, ifLeased, ifNot)
  local leased = redis.call('ZSCORE', p .. 'q:' .. q .. ':active', id) ~= false
  local aside = ownKeyRefused(p, jk, 'hash', 'a hash', leased and ifLeased or ifNot)
  if not aside then redis.call('HGET', jk, 't') end
  return leased, aside
end

local function releaseUnique(p, uniq, id, cost)
  local uk = p .. 'u:' .. uniq
  local held = redis.pcall('GET', uk)
  if held == id then
    redis.call('DEL', uk)
  elseif type(held) == 'table' and not ownKeyRefused(p, uk, 'string', 'a string', cost) then
    redis.call('GET', uk)
  end
end
