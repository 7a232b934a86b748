-- Cancel a task (see cancel_task in lib.lua).
-- KEYS[1] task, KEYS[2] pending, KEYS[3] delayed, KEYS[4] running, KEYS[5] log,
-- KEYS[6] done
-- ARGV[1] id, ARGV[2] held prefix, ARGV[3] control prefix, ARGV[4] retention
-- ms, ARGV[5] log cap
-- Returns the status before the call ('' when the task does not exist).
return cancel_task(ARGV[1],
  {task = KEYS[1], pending = KEYS[2], delayed = KEYS[3], running = KEYS[4], log = KEYS[5], done = KEYS[6]},
  {held = ARGV[2], control = ARGV[3]}, tonumber(ARGV[4]), tonumber(ARGV[5]), 'cancelled')
