-- Give the lease up (graceful shutdown) and wake one standby at once.
-- KEYS[1] leader, KEYS[2] epoch, KEYS[3] leader:wake; ARGV[1] node id, ARGV[2] epoch
-- Returns 1 when released, 0 when the caller did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[3], ARGV[1])
  -- A notice nobody pops must not linger and wake a later standby for nothing.
  redis.call('PEXPIRE', KEYS[3], 2000)
  return 1
end
return 0
