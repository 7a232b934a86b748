-- Remove a node's registry entry on graceful shutdown (only our own).
-- KEYS: nodes index, the node's entry
-- ARGV: node id, instance id
local nodes, entry = KEYS[1], KEYS[2]
local node, instance = ARGV[1], ARGV[2]
local owner = redis.call('HGET', entry, 'instance')
if owner == instance then
  redis.call('DEL', entry)
end
if not owner or owner == instance then
  redis.call('ZREM', nodes, node)
end
return 1
