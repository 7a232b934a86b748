-- Mark a task as waited on (its end then pushes a notice to done:{id}) and
-- return its record. A missing task is not created.
-- KEYS[1] task
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'waited', '1')
return redis.call('HGETALL', KEYS[1])
