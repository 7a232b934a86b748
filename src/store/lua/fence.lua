-- Fence prelude, prepended to every leader write.
-- KEYS[1] leader, KEYS[2] epoch, KEYS[3] fence:rejected counter
-- ARGV[1] caller's node id, ARGV[2] caller's epoch
-- A caller that does not hold the lease with this exact epoch writes nothing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  redis.call('INCR', KEYS[3])
  return redis.error_reply('FENCED stale leader ' .. ARGV[1] .. ' epoch ' .. ARGV[2])
end
