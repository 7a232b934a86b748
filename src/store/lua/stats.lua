-- Read-only cluster summary for `distsched stats` and `/metrics`: one
-- consistent instant, one round trip. Work is bounded by the number of
-- live nodes plus the tasks they hold (at most their total capacity).
-- KEYS: pending, delayed, nodes, wake, tasks index
-- Returns {now ms, pending, delayed, wake, tasks kept, {node, queue length,
-- queued, running}..., this minute's counts {field, value...}, last
-- minute's}.
local pending, delayed, nodes_key, wake_key, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = now_ms()
local nodes = {}
for _, id in ipairs(redis.call('ZRANGE', nodes_key, 0, -1)) do
  if redis.call('EXISTS', P.node .. id) == 1 then
    local queued, running = 0, 0
    for _, task in ipairs(redis.call('SMEMBERS', P.held .. id)) do
      local status = redis.call('HGET', P.task .. task, 'status')
      if status == 'running' then
        running = running + 1
      elseif status == 'pending' then
        queued = queued + 1
      end
    end
    nodes[#nodes + 1] = {id, redis.call('LLEN', P.queue .. id), queued, running}
  end
end
local minute = math.floor(now / 60000)
return {now, redis.call('ZCARD', pending), redis.call('ZCARD', delayed), redis.call('LLEN', wake_key),
  redis.call('ZCARD', index), nodes, redis.call('HGETALL', P.stats .. minute), redis.call('HGETALL', P.stats .. (minute - 1))}
