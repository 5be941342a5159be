-- Included (--#include revoked_result) by revoke and reserve, which finish a task revoked while it waited.
-- Not a script of its own.
-- revokedRecord(id, q, payload, now): the result stored for it, as JSON: the record the embedded broker
--   stores too (revokedResult in sqlite-transport.ts), with its keys in the same order: id, state
--   (REVOKED), task, queue, finishedAt. `task` is the message's task name when the payload is a JSON
--   object naming one and is at most 64 KiB; a larger payload is not decoded for it (a revoke must not
--   hold Redis up decoding megabytes), nor is an unreadable one: then `task` is left out.
local REVOKED_TASK_SCAN_BYTES = 65536

local function revokedRecord(id, q, payload, now)
  local task
  if type(payload) == 'string' and #payload <= REVOKED_TASK_SCAN_BYTES then
    local ok, msg = pcall(cjson.decode, payload)
    if ok and type(msg) == 'table' and type(msg.task) == 'string' then task = msg.task end
  end
  -- Written in order: cjson.encode of a table orders its keys as it pleases.
  local rec = '{"id":' .. cjson.encode(id) .. ',"state":"REVOKED"'
  if task then rec = rec .. ',"task":' .. cjson.encode(task) end
  return rec .. ',"queue":' .. cjson.encode(q) .. ',"finishedAt":' .. string.format('%d', now) .. '}'
end
