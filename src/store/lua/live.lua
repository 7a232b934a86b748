-- Worker: write what running attempts produced since the last call (log
-- lines and progress), about once a second (the `live` thread, batched
-- over the worker's pool). A write counts only for the task's current
-- attempt on this worker, so a zombie worker's output lands nowhere; it
-- is still accepted after the attempt ended (its last progress, lines
-- written just before its result). Lines are appended with lib.lua's
-- append_log, within the task's log caps.
-- ARGV[1] node id, ARGV[2] task prefix, ARGV[3] log prefix, ARGV[4] log
-- cap, then per attempt: id, attempt, progress percent ('' = unchanged),
-- progress text, n log lines, the n lines.
-- Returns the number of attempts written.
local now = now_ms()
local written = 0
local i = 5
while i <= #ARGV do
  local id, attempt, percent, text = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local n = tonumber(ARGV[i + 4])
  local first = i + 5
  i = first + n
  local key = ARGV[2] .. id
  local f = redis.call('HMGET', key, 'attempt', 'worker', 'status')
  if f[3] and f[1] == attempt and f[2] == ARGV[1] then
    written = written + 1
    if n > 0 then
      local tag = '[attempt ' .. attempt .. '] '
      local lines = {}
      for j = 1, n do lines[j] = tag .. ARGV[first + j - 1] end
      append_log(key, ARGV[3] .. id, lines, tonumber(ARGV[4]))
    end
    if percent ~= '' then
      redis.call('HSET', key, 'progress', percent, 'progress_text', text, 'progress_attempt', attempt,
        'progress_ms', now)
    end
  end
end
return written
