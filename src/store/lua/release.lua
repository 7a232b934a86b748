-- Give the lease up (graceful shutdown) and wake one standby at once.
-- KEYS: leader, epoch, leader:wake
-- ARGV: node id, epoch
-- Returns 1 when released, 0 when the caller did not hold it.
local leader, epoch_key, wake_key = KEYS[1], KEYS[2], KEYS[3]
local node, epoch = ARGV[1], ARGV[2]
if redis.call('GET', leader) == node and redis.call('GET', epoch_key) == epoch then
  redis.call('DEL', leader)
  redis.call('LPUSH', wake_key, node)
  -- A notice nobody pops must not linger and wake a later standby for nothing.
  redis.call('PEXPIRE', wake_key, 2000)
  return 1
end
return 0
