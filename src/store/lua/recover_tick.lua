-- Recoverer tick (fenced; the fence prelude comes first).
-- KEYS[4] nodes, KEYS[5] leader:status, KEYS[6] running, KEYS[7] pending,
-- KEYS[8] delayed, KEYS[9] seq, KEYS[10] wake, KEYS[11] tasks index
-- ARGV[3] node prefix, ARGV[4] heartbeat timeout ms, ARGV[5] task prefix,
-- ARGV[6] queue prefix, ARGV[7] held prefix, ARGV[8] log prefix,
-- ARGV[9] done prefix, ARGV[10] retention ms, ARGV[11] log cap,
-- ARGV[12] random [0,1), ARGV[13] most tasks to recover per tick
-- 1. Dead nodes (registry entry expired): drop them from the index; their
--    queued tasks go back to pending, their running tasks count a failed
--    attempt (retry or fail).
-- 2. Tasks past their `running` deadline (worker hung, or lost the item):
--    running → failed attempt; queued but never started → back to pending.
-- 3. Index entries of tasks whose record expired are dropped.
-- Returns {dead node ids, handed back, failed attempts}.
local now = now_ms()
local cap = tonumber(ARGV[11])
local retention = tonumber(ARGV[10])
local limit = tonumber(ARGV[13])
local rnd = tonumber(ARGV[12])
local handed_back, failed = 0, 0

local function back_to_pending(id, key)
  redis.call('ZREM', KEYS[6], id)
  redis.call('HDEL', key, 'worker', 'dispatched_ms')
  local prio = redis.call('HGET', key, 'priority') or 0
  redis.call('ZADD', KEYS[7], pending_score(prio, redis.call('INCR', KEYS[9])), id)
  handed_back = handed_back + 1
end

local function fail_running(id, key, why)
  redis.call('ZREM', KEYS[6], id)
  local logkey = ARGV[8] .. id
  local f = redis.call('HMGET', key, 'attempt', 'worker')
  local attempt = f[1] or '?'
  record_attempt(key, attempt, f[2], 'lost', why, now)
  -- Spread the jitter of tasks recovered together.
  rnd = (rnd * 7919 + 0.618034) % 1
  local status, delay = fail_attempt(key, id, KEYS[8], now, why, rnd)
  if status == 'retrying' then
    append_log(key, logkey, {'[attempt ' .. attempt .. '] ' .. why .. '; retry in ' .. delay .. 'ms'}, cap)
  else
    append_log(key, logkey, {'[attempt ' .. attempt .. '] ' .. why .. '; no retries left'}, cap)
    end_task(key, logkey, ARGV[9] .. id, 'failed', retention)
  end
  failed = failed + 1
end

-- 1. Dead nodes.
local dead = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[4]), 'LIMIT', 0, 100)
for _, node in ipairs(stale) do
  if redis.call('EXISTS', ARGV[3] .. node) == 0 then
    redis.call('ZREM', KEYS[4], node)
    table.insert(dead, node)
    local held = ARGV[7] .. node
    for _, id in ipairs(redis.call('SMEMBERS', held)) do
      local key = ARGV[5] .. id
      local f = redis.call('HMGET', key, 'status', 'worker')
      if f[2] == node and f[1] == 'pending' then
        back_to_pending(id, key)
      elseif f[2] == node and f[1] == 'running' then
        fail_running(id, key, 'worker ' .. node .. ' died')
      end
    end
    redis.call('DEL', held, ARGV[6] .. node)
  end
end

-- 2. Past their deadline.
local overdue = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(overdue) do
  local key = ARGV[5] .. id
  local f = redis.call('HMGET', key, 'status', 'worker', 'attempt')
  if f[2] then
    redis.call('SREM', ARGV[7] .. f[2], id)
  end
  if f[1] == 'running' then
    fail_running(id, key, 'no result from worker ' .. tostring(f[2]) .. ' by the deadline (timeout + grace)')
  elseif f[1] == 'pending' then
    if f[2] then
      redis.call('LREM', ARGV[6] .. f[2], 0, id .. '|' .. f[3])
    end
    back_to_pending(id, key)
  else
    redis.call('ZREM', KEYS[6], id)
  end
end

-- 3. Expired records in the listing index.
local old = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now - retention, 'LIMIT', 0, 200)
for _, id in ipairs(old) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then
    redis.call('ZREM', KEYS[11], id)
  end
end

if handed_back > 0 or failed > 0 then wake(KEYS[10]) end
redis.call('HSET', KEYS[5], 'tick_node', ARGV[1], 'tick_epoch', ARGV[2], 'tick_ms', now)
return {dead, handed_back, failed}
