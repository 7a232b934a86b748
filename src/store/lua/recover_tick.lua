-- Recoverer tick (fenced; the fence prelude comes first).
-- KEYS: (fence) nodes, leader:status, running, pending, delayed, seq, wake,
-- tasks index, parks index, trim, expiring
-- ARGV: (fence) heartbeat timeout ms, retention ms, most ended tasks kept,
-- log cap, random [0,1), most tasks to recover per tick
-- 1. Dead nodes (registry entry expired): drop them from the index; their
--    queued tasks go back to pending, their running tasks count a failed
--    attempt (retry or fail).
-- 2. Tasks past their `running` deadline (worker hung, or lost the item):
--    running → failed attempt; queued but never started → back to pending.
-- 3. Tasks past their start-by deadline that have not started are
--    cancelled (error `expired`).
-- 4. The listing index is trimmed (below).
-- Returns {dead node ids, handed back, failed attempts, ended tasks trimmed,
-- tasks expired}.
local nodes, status_key, running, pending = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local delayed, seq, wake_key, index = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local parks, trim, expiring = KEYS[12], KEYS[13], KEYS[14]
local arg = reader(3)
local heartbeat_timeout, retention, keep = tonumber(arg()), tonumber(arg()), tonumber(arg())
local cap = tonumber(arg())
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

-- 3. Start-by deadlines. A task that started in time keeps running; one
-- still waiting, delayed or queued ends cancelled.
local expired = 0
local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', now, 'LIMIT', 0, limit)
if #due > 0 then
  local k3 = {pending = pending, delayed = delayed, running = running}
  for _, id in ipairs(due) do
    local key = P.task .. id
    local f = redis.call('HMGET', key, 'status', 'started_ms', 'expires_ms')
    if (f[1] == 'pending' or f[1] == 'retrying') and not f[2] then
      redis.call('HSET', key, 'error', 'expired: not started by ' .. tostring(f[3]))
      cancel_task(id, k3, retention, cap, 'expired (not started by its deadline)')
      expired = expired + 1
    end
  end
  redis.call('ZREM', expiring, unpack(due))
end

-- 4. The listing index (every task by creation time). A walk from the
-- oldest entry drops entries whose record expired (the retention), and
-- the oldest ended tasks, with their logs, while more are kept than
-- `keep` (tasks waiting, delayed or on a worker do not count). It goes on
-- from a cursor, so tasks that never end (waiting for an executor no
-- worker offers) cannot stall it: at most TRIM_WALK entries a tick, and
-- only while there is work (ended tasks over the count, or entries past
-- the retention). A lap that reached the newest entry starts again from
-- the oldest a minute after it began, at once when over the count.
local TRIM_WALK = 500
local trimmed = 0
local excess = redis.call('ZCARD', index) - keep
if excess > 0 then
  local live = redis.call('ZCARD', pending) + redis.call('ZCARD', delayed) + redis.call('ZCARD', running)
  for _, park in ipairs(redis.call('SMEMBERS', parks)) do live = live + redis.call('ZCARD', park) end
  excess = excess - live
end
local t = redis.call('HMGET', trim, 'cursor', 'lap_ms')
local cursor, lap = t[1] or '-inf', tonumber(t[2] or 0)
if cursor == 'end' and (excess > 0 or now - lap >= 60000) then cursor = '-inf' end
if cursor ~= 'end' then
  local upto = '+inf'
  if excess <= 0 then upto = now - retention end
  local walked = redis.call('ZRANGEBYSCORE', index, cursor, upto, 'WITHSCORES', 'LIMIT', 0, TRIM_WALK)
  if cursor == '-inf' then redis.call('HSET', trim, 'lap_ms', now) end
  for j = 1, #walked, 2 do
    local id = walked[j]
    local key = P.task .. id
    local status = redis.call('HGET', key, 'status')
    if not status then
      redis.call('ZREM', index, id)
    elseif excess > 0 and (status == 'success' or status == 'failed' or status == 'cancelled') then
      redis.call('DEL', key, P.log .. id)
      redis.call('ZREM', index, id)
      excess = excess - 1
      trimmed = trimmed + 1
    end
  end
  if #walked < 2 * TRIM_WALK then
    cursor = 'end'
  elseif walked[2] == walked[#walked] then
    -- One millisecond's tasks filled the walk: past them.
    cursor = '(' .. walked[#walked]
  else
    -- From the last millisecond walked, so none of its tasks is skipped.
    cursor = walked[#walked]
  end
  redis.call('HSET', trim, 'cursor', cursor)
end

if handed_back > 0 or failed > 0 then wake(wake_key) end
redis.call('HSET', status_key, 'tick_node', ARGV[1], 'tick_epoch', ARGV[2], 'tick_ms', now)
return {dead, handed_back, failed, trimmed, expired}
