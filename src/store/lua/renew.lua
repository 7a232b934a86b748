-- Extend the lease if the caller still holds it with the same epoch.
-- KEYS: leader, epoch
-- ARGV: node id, epoch, ttl ms
-- Returns 1 when renewed, 0 when the lease is lost.
local leader, epoch_key = KEYS[1], KEYS[2]
local node, epoch, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', leader) == node and redis.call('GET', epoch_key) == epoch then
  redis.call('PEXPIRE', leader, ttl)
  return 1
end
return 0
