-- Register or refresh a node's registry entry.
-- KEYS[1] nodes zset, KEYS[2] node:{id} hash, KEYS[3] wake
-- ARGV[1] node id, ARGV[2] info JSON, ARGV[3] ttl ms, ARGV[4] instance id
-- Refuses (error NODE_ID_IN_USE <pttl>) when a live entry belongs to another
-- process instance, so two processes never share one id.
-- A new entry wakes the leader: tasks waiting for a capable worker may now go.
-- Returns the heartbeat time (Redis clock, ms).
local owner = redis.call('HGET', KEYS[2], 'instance')
if owner and owner ~= ARGV[4] then
  return redis.error_reply('NODE_ID_IN_USE ' .. redis.call('PTTL', KEYS[2]))
end
local now = now_ms()
if not owner then
  -- A fresh registration: no flag of an earlier process survives.
  redis.call('DEL', KEYS[2])
  wake(KEYS[3])
end
redis.call('HSET', KEYS[2], 'info', ARGV[2], 'heartbeat_ms', now, 'instance', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
