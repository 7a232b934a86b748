-- Cancel a task (see cancel_task in lib.lua).
-- KEYS: pending, delayed, running
-- ARGV: task id, retention ms, log cap
-- Returns the status before the call ('' when the task does not exist).
local pending, delayed, running = KEYS[1], KEYS[2], KEYS[3]
local arg = reader(1)
local id, retention, cap = arg(), tonumber(arg()), tonumber(arg())
return cancel_task(id, {pending = pending, delayed = delayed, running = running}, retention, cap, 'cancelled')
