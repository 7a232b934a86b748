-- Scheduler tick, write half (fenced; prelude first): move the balancer's
-- assignments from pending onto worker queues, re-checking everything the
-- read half saw (the task may be cancelled, the worker dead, draining or
-- full by now).
-- KEYS[4] pending, KEYS[5] running
-- ARGV[3] task prefix, ARGV[4] node prefix, ARGV[5] held prefix,
-- ARGV[6] queue prefix, ARGV[7] dispatch grace ms, ARGV[8] n assignments,
-- then n × (task id, worker id, worker capacity), then (task id, wait reason)
-- pairs for tasks no worker can take.
-- Returns the number of tasks dispatched.
local now = now_ms()
local n = tonumber(ARGV[8])
local sent = 0
for i = 0, n - 1 do
  local id, w, cap = ARGV[9 + i * 3], ARGV[10 + i * 3], tonumber(ARGV[11 + i * 3])
  local node = ARGV[4] .. w
  local held = ARGV[5] .. w
  if redis.call('ZSCORE', KEYS[4], id)
      and redis.call('EXISTS', node) == 1
      and redis.call('HGET', node, 'draining') ~= '1'
      and redis.call('SCARD', held) < cap then
    local key = ARGV[3] .. id
    redis.call('ZREM', KEYS[4], id)
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    local timeout = tonumber(redis.call('HGET', key, 'timeout_ms') or 300000)
    redis.call('HSET', key, 'worker', w, 'dispatched_ms', now)
    redis.call('HDEL', key, 'wait_reason')
    redis.call('ZADD', KEYS[5], now + timeout + tonumber(ARGV[7]), id)
    redis.call('SADD', held, id)
    redis.call('LPUSH', ARGV[6] .. w, id .. '|' .. attempt)
    sent = sent + 1
  end
end
for i = 9 + n * 3, #ARGV, 2 do
  local key = ARGV[3] .. ARGV[i]
  if redis.call('HGET', key, 'wait_reason') ~= ARGV[i + 1] and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'wait_reason', ARGV[i + 1])
  end
end
return sent
