-- Scheduler tick, write half (fenced; prelude first): move the balancer's
-- assignments onto worker queues, park what cannot be placed, and put
-- parked tasks back into pending when asked, re-checking everything the
-- read half saw (the task may be cancelled or moved, the worker dead,
-- draining or full by now).
-- KEYS: (fence) pending, running, parks index, then the park keys the
-- call names (below, a park is its index in KEYS), then each assigned
-- worker's entry, held set and queue (declared for routing; the script
-- builds the same names with P)
-- ARGV: (fence) dispatch grace ms, then the assignments: n, n × (task id,
-- worker id, worker capacity, where the read found it (a park, or 0 for
-- pending), its timeout ms, '1' if it has a wait reason); then the tasks to
-- park: m, m × (task id, park, wait reason); then until the end the parks
-- whose tasks go back to pending to be placed afresh: (park, lowest score
-- to put back ('-inf' or '(score'), most tasks to put back).
-- Returns {dispatched, parked, {tasks put back, score of the last one or
-- ''} per park put back}.
local pending, running, parks = KEYS[4], KEYS[5], KEYS[6]
local arg = reader(3)
local grace = tonumber(arg())
local now = now_ms()
local now_s = string.format('%d', now)
local sent, parked = 0, 0

local function park_key(index)
  local i = tonumber(index)
  if i == 0 then return pending end
  return KEYS[i]
end

-- Where a waiting task is (pending or its park), or nil if it is not
-- waiting there (dispatched, cancelled, gone).
local function waiting_in(id, key)
  local from = redis.call('HGET', key, 'parked') or pending
  if redis.call('ZSCORE', from, id) then return from end
  return nil
end

-- The hot path of a drain: each worker is checked once per call (alive,
-- not draining, free slots), and a task's removal from where the read
-- found it is the check that it still waits there (only this leader moves
-- waiting tasks; a cancel removes them).
local free = {}
local moves = new_moves()
for _ = 1, tonumber(arg()) do
  local id, w, cap, source, timeout, reason = arg(), arg(), tonumber(arg()), park_key(arg()), arg(), arg()
  if free[w] == nil then
    local node = redis.call('HMGET', P.node .. w, 'instance', 'draining')
    if node[1] and node[2] ~= '1' then
      free[w] = cap - redis.call('SCARD', P.held .. w)
    else
      free[w] = 0
    end
  end
  if free[w] > 0 and redis.call('ZREM', source, id) == 1 then
    local attempt = dispatch_task(moves, P.task .. id, id, w, nil, now_s, now + tonumber(timeout) + grace,
      source ~= pending or reason == '1')
    queue_task(moves, w, id, attempt)
    free[w] = free[w] - 1
    sent = sent + 1
  end
end
write_moves(moves, running)

for _ = 1, tonumber(arg()) do
  local id, park, reason = arg(), park_key(arg()), arg()
  local key = P.task .. id
  local from = waiting_in(id, key)
  if from then
    if from ~= park then
      local score = redis.call('ZSCORE', from, id)
      redis.call('ZREM', from, id)
      redis.call('ZADD', park, score, id)
      redis.call('SADD', parks, park)
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
for index in arg do
  local park, from, most = park_key(index), arg(), tonumber(arg())
  local head = redis.call('ZRANGEBYSCORE', park, from, '+inf', 'WITHSCORES', 'LIMIT', 0, most)
  for j = 1, #head, 2 do
    local id = head[j]
    local key = P.task .. id
    redis.call('ZREM', park, id)
    if redis.call('HGET', key, 'parked') == park then
      redis.call('ZADD', pending, head[j + 1], id)
      redis.call('HDEL', key, 'parked', 'wait_reason')
    end
  end
  if redis.call('ZCARD', park) == 0 then redis.call('SREM', parks, park) end
  moved[#moved + 1] = {#head / 2, head[#head] or ''}
end
return {sent, parked, moved}
