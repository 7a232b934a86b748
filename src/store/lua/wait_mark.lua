-- Mark a task as waited on (its end then pushes a notice to done:{id}) and
-- return its record. A missing task is not created.
-- KEYS: the task
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {} end
redis.call('HSET', key, 'waited', '1')
return redis.call('HGETALL', key)
