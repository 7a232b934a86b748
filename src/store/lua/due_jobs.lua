-- Read-only: the jobs due now (at most ARGV[1]), with their definitions.
-- KEYS[1] schedule, KEYS[2] jobs
-- Returns {now, {id, slot ms, JSON}...}.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i = 1, #due, 2 do
  local json = redis.call('HGET', KEYS[2], due[i])
  if json then
    out[#out + 1] = {due[i], tonumber(due[i + 1]), json}
  else
    redis.call('ZREM', KEYS[1], due[i])
  end
end
return {now, out}
