-- Remove a node's registry entry on graceful shutdown (only our own).
-- KEYS[1] nodes zset, KEYS[2] node:{id} hash; ARGV[1] node id, ARGV[2] instance id
local owner = redis.call('HGET', KEYS[2], 'instance')
if owner == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
if not owner or owner == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
