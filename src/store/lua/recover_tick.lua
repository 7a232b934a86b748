-- Recoverer tick (fenced; the fence prelude comes first).
-- KEYS: (fence) nodes, leader:status, running, pending, delayed, seq, wake,
-- tasks index
-- ARGV: (fence) heartbeat timeout ms, retention ms, log cap, random [0,1),
-- most tasks to recover per tick
-- 1. Dead nodes (registry entry expired): drop them from the index; their
--    queued tasks go back to pending, their running tasks count a failed
--    attempt (retry or fail).
-- 2. Tasks past their `running` deadline (worker hung, or lost the item):
--    running → failed attempt; queued but never started → back to pending.
-- 3. Index entries of tasks whose record expired are dropped.
-- Returns {dead node ids, handed back, failed attempts}.
local nodes, status_key, running, pending = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local delayed, seq, wake_key, index = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local arg = reader(3)
local heartbeat_timeout, retention, cap = tonumber(arg()), tonumber(arg()), tonumber(arg())
local rnd, limit = tonumber(arg()), tonumber(arg())
local now = now_ms()
local k = {running = running, pending = pending, seq = seq}
local handed_back, failed = 0, 0

-- A running attempt that will never report: a failed attempt, `lost`.
local function fail_running(id, key, why)
  redis.call('ZREM', running, id)
  local f = redis.call('HMGET', key, 'attempt', 'worker', 'started_ms')
  local attempt = f[1] or '?'
  redis.call('HSET', key, attempt_field(attempt, f[2], f[3], 'lost', why, now))
  -- Spread the jitter of tasks recovered together.
  rnd = (rnd * 7919 + 0.618034) % 1
  fail_task(key, id, attempt, why, why, rnd, now, delayed, retention, cap)
  failed = failed + 1
end

-- 1. Dead nodes.
local dead = {}
local stale = redis.call('ZRANGEBYSCORE', nodes, '-inf', now - heartbeat_timeout, 'LIMIT', 0, 100)
for _, node in ipairs(stale) do
  if redis.call('EXISTS', P.node .. node) == 0 then
    redis.call('ZREM', nodes, node)
    table.insert(dead, node)
    local held = P.held .. node
    for _, id in ipairs(redis.call('SMEMBERS', held)) do
      local key = P.task .. id
      local f = redis.call('HMGET', key, 'status', 'worker')
      if f[2] == node and f[1] == 'pending' then
        hand_back(key, id, node, k)
        handed_back = handed_back + 1
      elseif f[2] == node and f[1] == 'running' then
        fail_running(id, key, 'worker ' .. node .. ' died')
      end
    end
    redis.call('DEL', held, P.queue .. node)
  end
end

-- 2. Past their deadline.
local overdue = redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(overdue) do
  local key = P.task .. id
  local f = redis.call('HMGET', key, 'status', 'worker', 'attempt')
  if f[1] == 'running' then
    if f[2] then redis.call('SREM', P.held .. f[2], id) end
    fail_running(id, key, 'no result from worker ' .. tostring(f[2]) .. ' by the deadline (timeout + grace)')
  elseif f[1] == 'pending' then
    if f[2] then redis.call('LREM', P.queue .. f[2], 0, id .. '|' .. f[3]) end
    hand_back(key, id, f[2], k)
    handed_back = handed_back + 1
  else
    if f[2] then redis.call('SREM', P.held .. f[2], id) end
    redis.call('ZREM', running, id)
  end
end

-- 3. Expired records in the listing index.
local old = redis.call('ZRANGEBYSCORE', index, '-inf', now - retention, 'LIMIT', 0, 200)
for _, id in ipairs(old) do
  if redis.call('EXISTS', P.task .. id) == 0 then
    redis.call('ZREM', index, id)
  end
end

if handed_back > 0 or failed > 0 then wake(wake_key) end
redis.call('HSET', status_key, 'tick_node', ARGV[1], 'tick_epoch', ARGV[2], 'tick_ms', now)
return {dead, handed_back, failed}
