-- Extend the lease if the caller still holds it with the same epoch.
-- KEYS[1] leader, KEYS[2] epoch; ARGV[1] node id, ARGV[2] epoch, ARGV[3] ttl ms
-- Returns 1 when renewed, 0 when the lease is lost.
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
