-- Try to take the leader lease.
-- KEYS: leader, epoch, leader:status
-- ARGV: node id, ttl ms, highest epoch the caller has seen
-- Returns {1, epoch, ttl} when acquired, {0, pttl, epoch} when it is held.
-- A held lease is never taken, not even one held under the caller's own id:
-- that is an earlier incarnation of this node (crashed, or frozen and
-- replaced), and its term must end by release or expiry first.
-- The epoch never goes backwards even if Redis lost it (restart without
-- persistence): it restarts above the highest epoch any caller has seen.
local leader, epoch_key, status = KEYS[1], KEYS[2], KEYS[3]
local node, ttl, seen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local holder = redis.call('GET', leader)
if holder then
  return {0, redis.call('PTTL', leader), tonumber(redis.call('GET', epoch_key) or '0')}
end
local cur = tonumber(redis.call('GET', epoch_key) or '0')
if seen > cur then cur = seen end
local epoch = cur + 1
redis.call('SET', epoch_key, epoch)
redis.call('SET', leader, node, 'PX', ttl)
local now = now_ms()
redis.call('HSET', status, 'node', node, 'epoch', epoch, 'elected_ms', now)
return {1, epoch, tonumber(ttl)}
