-- Register or refresh a node's registry entry.
-- KEYS: nodes index, the node's entry, wake
-- ARGV: node id, info JSON, ttl ms, instance id
-- Refuses (error NODE_ID_IN_USE <pttl>) when a live entry belongs to another
-- process instance, so two processes never share one id.
-- A new entry wakes the leader: tasks waiting for a capable worker may now go.
-- Returns the heartbeat time (Redis clock, ms).
local nodes, entry, wake_key = KEYS[1], KEYS[2], KEYS[3]
local arg = reader(1)
local node, info, ttl, instance = arg(), arg(), arg(), arg()
local owner = redis.call('HGET', entry, 'instance')
if owner and owner ~= instance then
  return redis.error_reply('NODE_ID_IN_USE ' .. redis.call('PTTL', entry))
end
local now = now_ms()
if not owner then
  -- A fresh registration: no flag of an earlier process survives.
  redis.call('DEL', entry)
  wake(wake_key)
end
redis.call('HSET', entry, 'info', info, 'heartbeat_ms', now, 'instance', instance)
redis.call('PEXPIRE', entry, ttl)
redis.call('ZADD', nodes, now, node)
return now
