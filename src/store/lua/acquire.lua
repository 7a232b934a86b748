-- Try to take the leader lease.
-- KEYS[1] leader, KEYS[2] epoch, KEYS[3] leader:status
-- ARGV[1] node id, ARGV[2] ttl ms, ARGV[3] highest epoch the caller has seen
-- Returns {1, epoch, ttl} when acquired, {0, pttl, epoch} when it is held.
-- A held lease is never taken, not even one held under the caller's own id:
-- that is an earlier incarnation of this node (crashed, or frozen and
-- replaced), and its term must end by release or expiry first.
-- The epoch never goes backwards even if Redis lost it (restart without
-- persistence): it restarts above the highest epoch any caller has seen.
local holder = redis.call('GET', KEYS[1])
if holder then
  return {0, redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local seen = tonumber(ARGV[3])
if seen > cur then cur = seen end
local epoch = cur + 1
redis.call('SET', KEYS[2], epoch)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = now_ms()
redis.call('HSET', KEYS[3], 'node', ARGV[1], 'epoch', epoch, 'elected_ms', now)
return {1, epoch, tonumber(ARGV[2])}
