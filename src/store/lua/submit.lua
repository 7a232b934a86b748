-- Create a task (pending, or delayed until its ready time) and wake the leader.
-- KEYS[1] task, KEYS[2] pending, KEYS[3] delayed, KEYS[4] wake, KEYS[5] tasks
--   index, KEYS[6] seq, KEYS[7] idempotency key (unused when ARGV[4] is ''),
--   KEYS[8] the job's active set (unused when ARGV[6] is '')
-- ARGV[1] id, ARGV[2] ready ms (0 = now), ARGV[3] priority, ARGV[4] '1' to
--   honour the idempotency key, ARGV[5] its TTL ms, ARGV[6] '1' to track the
--   task in its job's active set (forbid/replace jobs), ARGV[7] delay ms
--   counted from now (Redis time; 0 = none), ARGV[8..] field/value pairs
-- Returns {1, id} when created, {0, existing id} when the id or key exists.
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[7])
  if existing then return {0, existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, ARGV[1]}
end
local now = now_ms()
local ready = tonumber(ARGV[2])
if ready < now + tonumber(ARGV[7]) then ready = now + tonumber(ARGV[7]) end
-- A small hash is searched field by field: the fields every result and
-- dispatch reads come first.
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempt', 0, 'failures', 0,
  'ready_ms', ready, 'created_ms', now)
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ready > now then
  redis.call('ZADD', KEYS[3], ready, ARGV[1])
else
  redis.call('ZADD', KEYS[2], pending_score(ARGV[3], redis.call('INCR', KEYS[6])), ARGV[1])
end
redis.call('ZADD', KEYS[5], now, ARGV[1])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[5])
end
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[8], ARGV[1])
end
wake(KEYS[4])
return {1, ARGV[1]}
