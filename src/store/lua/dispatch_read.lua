-- Scheduler tick, read half (fenced; prelude first): promote due delayed
-- tasks to pending, then return what the balancer needs.
-- KEYS[4] delayed, KEYS[5] pending, KEYS[6] nodes, KEYS[7] seq, KEYS[8] wake,
-- KEYS[9] schedule
-- ARGV[3] task prefix, ARGV[4] node prefix, ARGV[5] held prefix,
-- ARGV[6] most pending tasks to return, ARGV[7] most delayed tasks to promote
-- Returns {now, next delayed task or cron job ms or -1, {id, info, held, draining}..., {id,
-- executor, tags, balancer, route key}...}.
local now = now_ms()
-- Wake-ups queued so far are answered by this tick.
redis.call('DEL', KEYS[8])
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[7]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[4], id)
  local key = ARGV[3] .. id
  local f = redis.call('HMGET', key, 'status', 'priority')
  if f[1] == 'pending' or f[1] == 'retrying' then
    redis.call('ZADD', KEYS[5], pending_score(f[2] or 0, redis.call('INCR', KEYS[7])), id)
    redis.call('HSET', key, 'status', 'pending')
  end
end
local workers = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  local f = redis.call('HMGET', ARGV[4] .. id, 'info', 'draining')
  if f[1] then
    workers[#workers + 1] = {id, f[1], redis.call('SCARD', ARGV[5] .. id), f[2] or '0'}
  end
end
local tasks = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, tonumber(ARGV[6]) - 1)) do
  local f = redis.call('HMGET', ARGV[3] .. id, 'executor', 'tags', 'balancer', 'route_key')
  if f[1] then
    tasks[#tasks + 1] = {id, f[1], f[2] or '', f[3] or '', f[4] or ''}
  else
    -- The record is gone (expired or deleted by hand): drop the orphan.
    redis.call('ZREM', KEYS[5], id)
  end
end
local next_due = -1
for _, key in ipairs({KEYS[4], KEYS[9]}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] and (next_due < 0 or tonumber(head[2]) < next_due) then
    next_due = tonumber(head[2])
  end
end
return {now, next_due, workers, tasks}
