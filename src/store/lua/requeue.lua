-- Worker shutdown: mark the node draining (the dispatcher stops sending it
-- work, atomically with this call), then hand every item still in its queue
-- back to pending.
-- KEYS: the node's registry entry, its queue, its held set, running,
-- pending, seq, wake
-- ARGV: node id, this process's instance id (a newer process with the same
-- node id must not be marked draining, nor lose its queue)
-- Returns the number of tasks handed back.
-- (hand_back removes the tasks from the held set, KEYS[3].)
local entry, queue, running, pending, seq, wake_key = KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local arg = reader(1)
local node, instance = arg(), arg()
local owner = redis.call('HGET', entry, 'instance')
if owner and owner ~= instance then return 0 end
if owner then redis.call('HSET', entry, 'draining', '1') end
local k = {running = running, pending = pending, seq = seq}
local n = 0
local items = redis.call('LRANGE', queue, 0, -1)
redis.call('DEL', queue)
for i = #items, 1, -1 do
  local id, attempt = string.match(items[i], '^(.*)|(%d+)$')
  if id then
    local key = P.task .. id
    local f = redis.call('HMGET', key, 'status', 'attempt', 'worker')
    if f[1] == 'pending' and f[2] == attempt and f[3] == node then
      hand_back(key, id, node, k)
      n = n + 1
    end
  end
end
if n > 0 then wake(wake_key) end
return n
