-- Read-only: the jobs due now, with their definitions.
-- KEYS: schedule, jobs
-- ARGV: most jobs to return
-- Returns {now, {id, slot ms, JSON}...}.
local schedule, jobs = KEYS[1], KEYS[2]
local most = tonumber(ARGV[1])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'WITHSCORES', 'LIMIT', 0, most)
local out = {}
for i = 1, #due, 2 do
  local json = redis.call('HGET', jobs, due[i])
  if json then
    out[#out + 1] = {due[i], tonumber(due[i + 1]), json}
  else
    redis.call('ZREM', schedule, due[i])
  end
end
return {now, out}
