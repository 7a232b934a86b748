-- Create a task (pending, or delayed until its ready time) and wake the leader.
-- KEYS: the task, pending, delayed, wake, tasks index, seq, the
-- idempotency key (unused when not honoured), the job's active set (unused
-- when not tracked), expiring
-- ARGV: id, ready ms (0 = now), priority, '1' to honour the idempotency
-- key, its TTL ms, '1' to track the task in its job's active set
-- (forbid/replace jobs), delay ms counted from now (Redis time; 0 = none),
-- start-by deadline ms counted from the ready time (0 = none), then
-- field/value pairs until the end
-- Returns {1, id} when created, {0, existing id} when the id or key exists.
local key, pending, delayed, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local index, seq, idempotency, active, expiring = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local arg = reader(1)
local id, ready, priority = arg(), tonumber(arg()), arg()
local honour_key, key_ttl, track, delay = arg() == '1', arg(), arg() == '1', tonumber(arg())
local expires = tonumber(arg())
if honour_key then
  local existing = redis.call('GET', idempotency)
  if existing then return {0, existing} end
end
if redis.call('EXISTS', key) == 1 then
  return {0, id}
end
local now = now_ms()
if ready < now + delay then ready = now + delay end
-- A small hash is searched field by field: the fields every result and
-- dispatch reads come first.
redis.call('HSET', key, 'status', 'pending', 'attempt', 0, 'failures', 0,
  'ready_ms', ready, 'created_ms', now)
local fields = {}
for v in arg do fields[#fields + 1] = v end
redis.call('HSET', key, unpack(fields))
if ready > now then
  redis.call('ZADD', delayed, ready, id)
else
  to_pending(key, id, {pending = pending, seq = seq}, priority, 'pending')
end
redis.call('ZADD', index, now, id)
if expires > 0 then
  redis.call('HSET', key, 'expires_ms', ready + expires)
  redis.call('ZADD', expiring, ready + expires, id)
end
if honour_key then
  redis.call('SET', idempotency, id, 'PX', key_ttl)
end
if track then
  redis.call('SADD', active, id)
end
wake(wake_key)
return {1, id}
