-- Worker shutdown: mark the node draining (the dispatcher stops sending it
-- work, atomically with this call), then hand every item still in its queue
-- back to pending.
-- KEYS[1] node entry, KEYS[2] the worker's queue, KEYS[3] held set,
-- KEYS[4] running, KEYS[5] pending, KEYS[6] seq, KEYS[7] wake
-- ARGV[1] node id, ARGV[2] task prefix, ARGV[3] this process's instance id
-- (a newer process with the same node id must not be marked draining)
-- Returns the number of tasks handed back.
if redis.call('HGET', KEYS[1], 'instance') == ARGV[3] then
  redis.call('HSET', KEYS[1], 'draining', '1')
end
local n = 0
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
for i = #items, 1, -1 do
  local id, attempt = string.match(items[i], '^(.*)|(%d+)$')
  if id then
    local key = ARGV[2] .. id
    local f = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'priority')
    if f[1] == 'pending' and f[2] == attempt and f[3] == ARGV[1] then
      redis.call('SREM', KEYS[3], id)
      redis.call('ZREM', KEYS[4], id)
      redis.call('HDEL', key, 'worker', 'dispatched_ms')
      redis.call('ZADD', KEYS[5], pending_score(f[4] or 0, redis.call('INCR', KEYS[6])), id)
      n = n + 1
    end
  end
end
if n > 0 then wake(KEYS[7]) end
return n
