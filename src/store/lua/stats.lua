-- Read-only cluster summary for `distsched stats` and `/metrics`: one
-- consistent instant, one round trip. Work is bounded by the number of
-- live nodes plus the tasks they hold (at most their total capacity).
-- KEYS[1] pending, KEYS[2] delayed, KEYS[3] nodes, KEYS[4] wake
-- ARGV[1] node prefix, ARGV[2] queue prefix, ARGV[3] held prefix,
-- ARGV[4] task prefix, ARGV[5] per-minute stats prefix
-- Returns {now ms, pending, delayed, wake, {node, queue length, queued,
-- running}..., this minute's counts {field, value...}, last minute's}.
local now = now_ms()
local nodes = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    local queued, running = 0, 0
    for _, task in ipairs(redis.call('SMEMBERS', ARGV[3] .. id)) do
      local status = redis.call('HGET', ARGV[4] .. task, 'status')
      if status == 'running' then
        running = running + 1
      elseif status == 'pending' then
        queued = queued + 1
      end
    end
    nodes[#nodes + 1] = {id, redis.call('LLEN', ARGV[2] .. id), queued, running}
  end
end
local minute = math.floor(now / 60000)
return {now, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[4]),
  nodes, redis.call('HGETALL', ARGV[5] .. minute), redis.call('HGETALL', ARGV[5] .. (minute - 1))}
