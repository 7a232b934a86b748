-- Shared helpers, prepended to every script (after the fence prelude).
-- Keys derived from prefixes passed in ARGV all carry the namespace's hash
-- tag, so they live in the same cluster slot as the declared KEYS.

-- Redis server time in ms: one clock for every node.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Pending order: higher priority first, then first in. Priority is
-- -1000..1000; the sequence fits in 40 bits, so the score stays exact in a
-- double.
local function pending_score(priority, seq)
  return (1000 - tonumber(priority)) * 1099511627776 + tonumber(seq)
end

-- Drops the oldest lines of log `key` (`len` lines, `total` bytes) until it
-- holds at most `cap` lines and LOG_BYTES bytes (LOG_BYTES is prepended to
-- this file by scripts.rs, from MAX_TASK_LOG_BYTES), and keeps one note at
-- its head saying what was dropped so far (the task's `log_dropped_lines`
-- and `log_dropped_bytes`; the note itself is not counted). Only called
-- once a cap is passed: the per-line work here is for logs being cut.
local function trim_log(task, key, len, total, cap)
  local d = redis.call('HMGET', task, 'log_dropped_lines', 'log_dropped_bytes')
  local lines, bytes = tonumber(d[1] or 0), tonumber(d[2] or 0)
  if d[1] then
    redis.call('LPOP', key)
    len = len - 1
  end
  local keep = cap - 1
  while len > 0 and (len > keep or total > LOG_BYTES) do
    -- At most 64 lines more than the line cap asks for per round, guessed
    -- from the mean line size, so mixed sizes do not drop much more than
    -- needed.
    local k = 1
    if total > LOG_BYTES then
      k = math.min(math.ceil((total - LOG_BYTES) * len / total), 64)
    end
    k = math.max(k, len - keep, 1)
    local gone = redis.call('LPOP', key, k)
    if not gone then break end
    for _, l in ipairs(gone) do
      total = total - #l
      bytes = bytes + #l
    end
    lines = lines + #gone
    len = len - #gone
  end
  if len <= 0 then total = 0 end
  redis.call('LPUSH', key, '(log cap ' .. cap .. ' lines / ' .. (LOG_BYTES / 1024) .. ' KiB reached: ' ..
    lines .. ' earlier lines, ' .. bytes .. ' bytes dropped)')
  redis.call('HSET', task, 'log_bytes', total, 'log_dropped_lines', lines, 'log_dropped_bytes', bytes)
end

-- Appends lines to task `task`'s log `key`, keeping the newest within `cap`
-- lines and LOG_BYTES bytes over all attempts (the task's `log_bytes`
-- counts them). The task must exist: the counter lives in its hash. A log
-- created for a task that has ended already (a late, stale result) expires
-- with it; one created for a live task is marked in the task (`logged`),
-- so that ending a task that never logged skips the log. Costs RPUSH +
-- HINCRBY while within the caps (no more commands than the LTRIM it
-- replaced), and nothing for no lines.
local function append_log(task, key, lines, cap)
  local n = #lines
  if n == 0 then return end
  local len = redis.call('RPUSH', key, unpack(lines))
  if len == n then
    local ttl = redis.call('PTTL', task)
    if ttl > 0 then
      redis.call('PEXPIRE', key, ttl)
    elseif ttl == -1 then
      redis.call('HSET', task, 'logged', '1')
    end
  end
  local bytes = 0
  for j = 1, n do bytes = bytes + #lines[j] end
  local total = redis.call('HINCRBY', task, 'log_bytes', bytes)
  if len > cap or total > LOG_BYTES then trim_log(task, key, len, total, cap) end
end

-- Wakes the leader's scheduler thread unless a wake-up is already queued.
local function wake(key)
  if redis.call('LLEN', key) == 0 then
    redis.call('LPUSH', key, 1)
  end
end

-- Ends a task: keep it (and its log) for the retention, and tell a waiter.
-- `waited` is the task's `waited` field when the caller has read it
-- (nil: read it here); `logged` is false when the caller knows the task
-- has no log (nil: expire it anyway).
local function end_task(key, logkey, done_key, status, retention, waited, logged)
  redis.call('PEXPIRE', key, retention)
  if logged ~= false then redis.call('PEXPIRE', logkey, retention) end
  if waited == nil then waited = redis.call('HGET', key, 'waited') end
  if waited == '1' then
    redis.call('LPUSH', done_key, status)
    redis.call('PEXPIRE', done_key, 60000)
  end
end

-- Records a failed attempt (the caller has taken the task out of running
-- and its worker's held set): `retrying` in `delayed` after
-- retry_delay × backoff^(failures-1), capped by max_delay, ± jitter, while
-- retries remain; otherwise `failed`. `rnd` is a random number in [0, 1).
-- Returns the new status and the retry delay (ms).
local function fail_attempt(key, id, delayed_key, now, err, rnd)
  local f = redis.call('HMGET', key, 'failures', 'max_retries', 'retry_delay_ms', 'backoff',
    'max_delay_ms', 'jitter')
  local failures = tonumber(f[1] or 0) + 1
  redis.call('HSET', key, 'failures', failures, 'error', err)
  if failures <= tonumber(f[2] or 0) then
    local delay = tonumber(f[3] or 0) * (tonumber(f[4] or 1) ^ (failures - 1))
    local max_delay = tonumber(f[5] or 0)
    if max_delay > 0 and delay > max_delay then delay = max_delay end
    delay = math.floor(delay * (1 + tonumber(f[6] or 0) * (2 * rnd - 1)))
    redis.call('HSET', key, 'status', 'retrying', 'next_attempt_ms', now + delay)
    redis.call('ZADD', delayed_key, now + delay, id)
    return 'retrying', delay
  end
  redis.call('HSET', key, 'status', 'failed', 'ended_ms', now)
  return 'failed', 0
end

-- Cancels task `id` wherever it is; returns its status before ('' if none).
-- Pending (in `pending` or parked: its `parked` field names the park) or
-- delayed: ended at once. (The park key in the record was built by the
-- key module, so it carries the namespace's hash tag too.) Queued on a worker but not started:
-- ended at once, the queue item goes stale and the slot is freed. Running:
-- ended, and its worker is told on its cancel list; the worker's report
-- then frees the slot.
-- k: {task, pending, delayed, running, log, done}; p: {held prefix,
-- control prefix}; retention ms; log cap; why (for the log).
local function cancel_task(id, k, p, retention, cap, why)
  local f = redis.call('HMGET', k.task, 'status', 'worker', 'attempt', 'parked')
  local status = f[1]
  if not status then return '' end
  if status == 'success' or status == 'failed' or status == 'cancelled' then
    return status
  end
  redis.call('ZREM', k.pending, id)
  if f[4] then
    redis.call('ZREM', f[4], id)
    redis.call('HDEL', k.task, 'parked', 'wait_reason')
  end
  redis.call('ZREM', k.delayed, id)
  redis.call('ZREM', k.running, id)
  if status == 'pending' and f[2] then
    redis.call('SREM', p.held .. f[2], id)
  elseif status == 'running' then
    local ctl = p.control .. f[2] .. ':cancel'
    redis.call('LPUSH', ctl, id .. '|' .. f[3])
    redis.call('PEXPIRE', ctl, 60000)
  end
  redis.call('HSET', k.task, 'status', 'cancelled', 'ended_ms', now_ms())
  append_log(k.task, k.log, {why .. ' while ' .. status}, cap)
  end_task(k.task, k.log, k.done, 'cancelled', retention)
  return status
end

-- How attempt `attempt` ended, as stored in the task's own hash (field
-- `a<attempt>`, so it expires with the task): worker, start ms, end ms,
-- outcome, message, tab-separated. Returns the field and its value.
local function attempt_field(attempt, worker, started, outcome, message, now)
  return 'a' .. attempt,
    (worker or '') .. '\t' .. (started or '') .. '\t' .. now .. '\t' .. outcome .. '\t' .. (message or '')
end

-- Records how attempt `attempt` ended (see `attempt_field`).
local function record_attempt(key, attempt, worker, outcome, message, now)
  local started = redis.call('HGET', key, 'started_ms')
  redis.call('HSET', key, attempt_field(attempt, worker, started, outcome, message, now))
end
