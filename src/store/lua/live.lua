-- Worker: write what running attempts produced since the last call (log
-- lines and progress), about once a second (the `live` thread, batched
-- over the worker's pool). A write counts only for the task's current
-- attempt on this worker, so a zombie worker's output lands nowhere; it
-- is still accepted after the attempt ended (its last progress, lines
-- written just before its result). Lines are appended with lib.lua's
-- append_log, within the task's log caps.
-- KEYS: the worker's registry entry (the namespace's tag)
-- ARGV: node id, log cap, then per attempt until the end: id, attempt,
-- progress percent ('' = unchanged), progress text, n log lines, the n
-- lines.
-- Returns the number of attempts written.
local arg = reader(1)
local node, cap = arg(), tonumber(arg())
local now = now_ms()
local written = 0
for id in arg do
  local attempt, percent, text, n = arg(), arg(), arg(), tonumber(arg())
  local lines = {}
  local tag = '[attempt ' .. attempt .. '] '
  for j = 1, n do lines[j] = tag .. arg() end
  local key = P.task .. id
  local f = redis.call('HMGET', key, 'attempt', 'worker', 'status')
  if f[3] and f[1] == attempt and f[2] == node then
    written = written + 1
    if n > 0 then append_log(key, P.log .. id, lines, cap) end
    if percent ~= '' then
      redis.call('HSET', key, 'progress', percent, 'progress_text', text, 'progress_attempt', attempt,
        'progress_ms', now)
    end
  end
end
return written
