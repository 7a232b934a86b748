-- Try to take the leader lease.
-- KEYS: leader, epoch, leader:status, epoch origin
-- ARGV: node id, ttl ms, highest epoch the caller has seen
-- Returns {1, epoch, ttl} when acquired, {0, pttl, epoch} when it is held.
-- A held lease is never taken, not even one held under the caller's own id:
-- that is an earlier incarnation of this node (crashed, or frozen and
-- replaced), and its term must end by release or expiry first.
-- The epoch never repeats, even if Redis lost some of it:
-- * it goes above the highest epoch the caller has seen (a restart without
--   persistence; a failover whose new master missed the last INCR);
-- * on a server other than the one that issued the stored epoch (its
--   replication id differs: a promoted replica, a restarted server), it
--   jumps to the Redis clock in microseconds first. An epoch the old master
--   issued and lost was issued before the failover, and no server runs more
--   than one acquire per microsecond, so every lost epoch is below that
--   clock reading (given server clocks that agree to within the failover
--   time, which Redis's own expiry replication assumes as well).
local leader, epoch_key, status, origin_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node, ttl, seen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local holder = redis.call('GET', leader)
if holder then
  return {0, redis.call('PTTL', leader), tonumber(redis.call('GET', epoch_key) or '0')}
end
local stored = redis.call('GET', epoch_key)
local cur = tonumber(stored or '0')
if seen > cur then cur = seen end
local info = redis.pcall('INFO', 'replication')
local replid = type(info) == 'string' and string.match(info, 'master_replid:(%w+)')
if replid then
  local origin = redis.call('GET', origin_key)
  if (origin and origin ~= replid) or (not origin and not stored and seen > 0) then
    local t = redis.call('TIME')
    local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    if now_us > cur then cur = now_us end
  end
  redis.call('SET', origin_key, replid)
end
local epoch = cur + 1
redis.call('SET', epoch_key, epoch)
redis.call('SET', leader, node, 'PX', ttl)
local now = now_ms()
redis.call('HSET', status, 'node', node, 'epoch', epoch, 'elected_ms', now)
return {1, epoch, tonumber(ttl)}
