-- Read-only: a task's log lines from an absolute line number on, for a
-- live tail (`task logs --follow`, the dashboard's task page). Lines are
-- numbered from the task's first line ever: the store drops the oldest
-- lines past the caps (`trim_log` in lib.lua counts them in
-- `log_dropped_lines` and keeps a note at the log's head), so number n is
-- at list index n - dropped (+ 1 for the note).
-- KEYS[1] task, KEYS[2] log
-- ARGV[1] first line wanted, ARGV[2] most lines to return
-- Returns {status ('' = no such task), dropped, total lines ever, number
-- of the first line returned, {lines}}.
local f = redis.call('HMGET', KEYS[1], 'status', 'log_dropped_lines')
local dropped = tonumber(f[2] or 0)
local note = 0
if f[2] then note = 1 end
local len = redis.call('LLEN', KEYS[2])
local total = dropped + len - note
if total < dropped then total = dropped end
local first = tonumber(ARGV[1])
if first < dropped then first = dropped end
if first > total then first = total end
local from = first - dropped + note
local lines = {}
if first < total then
  lines = redis.call('LRANGE', KEYS[2], from, from + tonumber(ARGV[2]) - 1)
end
return {f[1] or '', dropped, total, first, lines}
