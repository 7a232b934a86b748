-- Read-only: a task's log lines from an absolute line number on, for a
-- live tail (`task logs --follow`, the dashboard's task page). Lines are
-- numbered from the task's first line ever: the store drops the oldest
-- lines past the caps (`trim_log` in lib.lua counts them in
-- `log_dropped_lines` and keeps a note at the log's head), so number n is
-- at list index n - dropped (+ 1 for the note).
-- KEYS: the task, its log
-- ARGV: first line wanted, most lines to return
-- Returns {status ('' = no such task), dropped, total lines ever, number
-- of the first line returned, {lines}}.
local key, log = KEYS[1], KEYS[2]
local first, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', key, 'status', 'log_dropped_lines')
local dropped = tonumber(f[2] or 0)
local note = 0
if f[2] then note = 1 end
local len = redis.call('LLEN', log)
local total = dropped + len - note
if total < dropped then total = dropped end
if first < dropped then first = dropped end
if first > total then first = total end
local from = first - dropped + note
local lines = {}
if first < total then
  lines = redis.call('LRANGE', log, from, from + most - 1)
end
return {f[1] or '', dropped, total, first, lines}
