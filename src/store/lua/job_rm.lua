-- Remove a job: its definition, schedule, state and history. Tasks it
-- created run on.
-- KEYS: jobs, schedule, the job's state, history, active set
-- ARGV: id
-- Returns 1 removed, 0 no such job.
local jobs, schedule, state, history, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
if redis.call('HDEL', jobs, id) == 0 then return 0 end
redis.call('ZREM', schedule, id)
redis.call('DEL', state, history, active)
return 1
