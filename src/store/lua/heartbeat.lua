-- Register or refresh a node's registry entry.
-- KEYS: nodes index, the node's entry, wake, epoch
-- ARGV: node id, info JSON, ttl ms, instance id, highest epoch it has seen
-- Refuses (error NODE_ID_IN_USE <pttl>) when a live entry belongs to another
-- process instance, so two processes never share one id.
-- A new entry wakes the leader: tasks waiting for a capable worker may now go.
-- The stored fencing epoch is raised to the highest the node has seen: a
-- promoted replica that missed the last INCR (asynchronous replication) is
-- repaired by the first heartbeat that reaches it, so the next acquire
-- goes above every epoch a live node knows.
-- Returns {heartbeat time (Redis clock, ms), stored epoch}.
local nodes, entry, wake_key, epoch_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local arg = reader(1)
local node, info, ttl, instance, seen = arg(), arg(), arg(), arg(), tonumber(arg())
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
local epoch = tonumber(redis.call('GET', epoch_key) or '0')
if seen and seen > epoch then
  epoch = seen
  redis.call('SET', epoch_key, epoch)
end
return {now, epoch}
