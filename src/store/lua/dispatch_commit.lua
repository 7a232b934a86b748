-- Scheduler tick, write half (fenced; prelude first): move the balancer's
-- assignments onto worker queues, park what cannot be placed, and put
-- parked tasks back into pending when asked, re-checking everything the
-- read half saw (the task may be cancelled or moved, the worker dead,
-- draining or full by now).
-- A waiting task is in `pending` or in exactly one park; its `parked` field
-- names the park (unset in pending).
-- KEYS[4] pending, KEYS[5] running, KEYS[6] parks index
-- ARGV[3] task prefix, ARGV[4] node prefix, ARGV[5] held prefix,
-- ARGV[6] queue prefix, ARGV[7] dispatch grace ms, ARGV[8] n assignments,
-- then n × (task id, worker id, worker capacity, where the read found it
-- (park key, or '' for pending), its timeout ms, '1' if it has a wait
-- reason), then m, then m × (task id,
-- park key, wait reason), then (park key, lowest score to put back ('-inf'
-- or '(score'), most tasks to put back) triples: parks whose tasks go back
-- to pending to be placed afresh.
-- Returns {dispatched, parked, {tasks put back, score of the last one or
-- ''} per park put back}.
local now = now_ms()
local n = tonumber(ARGV[8])
local sent, parked = 0, 0

-- Where a waiting task is ('pending' or its park), or nil if it is not
-- waiting there (dispatched, cancelled, gone).
local function waiting_in(id, key)
  local from = redis.call('HGET', key, 'parked') or KEYS[4]
  if redis.call('ZSCORE', from, id) then return from end
  return nil
end

-- The hot path of a drain: each worker is checked once per call (alive,
-- not draining, free slots), and a task's removal from where the read
-- found it is the check that it still waits there (only this leader moves
-- waiting tasks; a cancel removes them).
local free = {}
local items = {}
for i = 0, n - 1 do
  local b = 9 + i * 6
  local id, w, cap, source = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3]
  local held = ARGV[5] .. w
  if free[w] == nil then
    local node = redis.call('HMGET', ARGV[4] .. w, 'instance', 'draining')
    if node[1] and node[2] ~= '1' then
      free[w] = cap - redis.call('SCARD', held)
    else
      free[w] = 0
    end
  end
  if free[w] > 0 then
    if source == '' then source = KEYS[4] end
    if redis.call('ZREM', source, id) == 1 then
      local key = ARGV[3] .. id
      local attempt = redis.call('HINCRBY', key, 'attempt', 1)
      redis.call('HSET', key, 'worker', w, 'dispatched_ms', now)
      if source ~= KEYS[4] or ARGV[b + 5] == '1' then
        redis.call('HDEL', key, 'wait_reason', 'parked')
      end
      redis.call('ZADD', KEYS[5], now + tonumber(ARGV[b + 4]) + tonumber(ARGV[7]), id)
      redis.call('SADD', held, id)
      local queue = items[w]
      if not queue then
        queue = {}
        items[w] = queue
      end
      queue[#queue + 1] = id .. '|' .. attempt
      free[w] = free[w] - 1
      sent = sent + 1
    end
  end
end
-- One push per worker, in assignment order (the worker pops from the right).
for w, queue in pairs(items) do
  redis.call('LPUSH', ARGV[6] .. w, unpack(queue))
end

local i = 9 + n * 6
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  local id, park, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local key = ARGV[3] .. id
  local from = waiting_in(id, key)
  if from then
    if from ~= park then
      local score = redis.call('ZSCORE', from, id)
      redis.call('ZREM', from, id)
      redis.call('ZADD', park, score, id)
      redis.call('SADD', KEYS[6], park)
      redis.call('HSET', key, 'parked', park)
      parked = parked + 1
    end
    if redis.call('HGET', key, 'wait_reason') ~= reason then
      redis.call('HSET', key, 'wait_reason', reason)
    end
  end
end

-- Put back, in score order from a cursor, so that a task re-parked while
-- its park is being put back is not put back again.
local moved = {}
while i <= #ARGV do
  local park, from, most = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local head = redis.call('ZRANGEBYSCORE', park, from, '+inf', 'WITHSCORES', 'LIMIT', 0, most)
  for j = 1, #head, 2 do
    local id = head[j]
    local key = ARGV[3] .. id
    redis.call('ZREM', park, id)
    if redis.call('HGET', key, 'parked') == park then
      redis.call('ZADD', KEYS[4], head[j + 1], id)
      redis.call('HDEL', key, 'parked', 'wait_reason')
    end
  end
  if redis.call('ZCARD', park) == 0 then redis.call('SREM', KEYS[6], park) end
  moved[#moved + 1] = {#head / 2, head[#head] or ''}
end
return {sent, parked, moved}
