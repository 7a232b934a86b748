-- Remove a job: its definition, schedule, state and history. Tasks it
-- created run on.
-- KEYS[1] jobs, KEYS[2] schedule, KEYS[3] job state, KEYS[4] history,
-- KEYS[5] active set; ARGV[1] id
-- Returns 1 removed, 0 no such job.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
return 1
