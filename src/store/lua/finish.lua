-- Worker: record the outcome of attempts (a batch), retry or end the tasks.
-- KEYS[1] running, KEYS[2] the worker's held set, KEYS[3] delayed,
-- KEYS[4] pending, KEYS[5] wake
-- ARGV[1] node id, ARGV[2] task prefix, ARGV[3] log prefix, ARGV[4] retention
-- ms, ARGV[5] log cap, ARGV[6] done prefix, ARGV[7] per-minute stats
-- prefix, then per outcome: id, attempt,
-- outcome (success|failed|timeout|cancelled), result JSON, error text,
-- random [0,1) for jitter, n log lines, the n lines.
-- A report for an attempt that is no longer the task's current one on this
-- worker (recovered, reassigned, or a zombie worker) changes nothing.
-- Accepted outcomes are also counted in this minute's stats hash (for the
-- `stats` rates), in the same script so a retried batch cannot count twice.
-- Returns {accepted, rejected, succeeded, retried, failed (ended)}.
local now = now_ms()
local retention = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local accepted, rejected = 0, 0
local counts = {success = 0, retried = 0, failed = 0, timeout = 0}
local i = 8
while i <= #ARGV do
  local id, attempt, outcome, result, err, rnd = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  local nlines = tonumber(ARGV[i + 6])
  local tag = '[attempt ' .. attempt .. '] '
  local lines = {}
  for j = 1, nlines do lines[j] = tag .. ARGV[i + 6 + j] end
  i = i + 7 + nlines
  local key = ARGV[2] .. id
  local logkey = ARGV[3] .. id
  local f = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'failures', 'waited', 'started_ms')
  if f[2] ~= attempt or f[3] ~= ARGV[1] or (f[1] ~= 'running' and f[1] ~= 'cancelled') then
    rejected = rejected + 1
    if f[1] then
      append_log(logkey, {tag .. 'stale ' .. outcome .. ' from ' .. ARGV[1] ..
        ' rejected (current attempt ' .. tostring(f[2]) .. ', status ' .. f[1] .. ')'}, cap)
    end
  else
    accepted = accepted + 1
    if outcome == 'timeout' then counts.timeout = counts.timeout + 1 end
    redis.call('SREM', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    append_log(logkey, lines, cap)
    local afield, avalue = attempt_field(attempt, ARGV[1], f[6], outcome, err, now)
    if f[1] == 'cancelled' then
      redis.call('HSET', key, afield, avalue)
      append_log(logkey, {tag .. 'stopped after cancel'}, cap)
    elseif outcome == 'success' then
      -- The hot path: one write for the whole outcome.
      redis.call('HSET', key, 'status', 'success', 'ended_ms', now, 'result', result, afield, avalue)
      if f[4] and f[4] ~= '0' then
        redis.call('HDEL', key, 'error', 'next_attempt_ms')
      end
      end_task(key, logkey, ARGV[6] .. id, 'success', retention, f[5] or false)
      counts.success = counts.success + 1
    else
      redis.call('HSET', key, 'result', result, afield, avalue)
      local status, delay = fail_attempt(key, id, KEYS[3], now, err, rnd)
      if status == 'retrying' then
        append_log(logkey, {tag .. outcome .. ': ' .. err .. '; retry in ' .. delay .. 'ms'}, cap)
        counts.retried = counts.retried + 1
      else
        append_log(logkey, {tag .. outcome .. ': ' .. err .. '; no retries left'}, cap)
        end_task(key, logkey, ARGV[6] .. id, 'failed', retention)
        counts.failed = counts.failed + 1
      end
    end
  end
end
if accepted > 0 then
  wake(KEYS[5])
  local stats = ARGV[7] .. math.floor(now / 60000)
  for field, n in pairs(counts) do
    if n > 0 then redis.call('HINCRBY', stats, field, n) end
  end
  redis.call('PEXPIRE', stats, 3600000)
end
return {accepted, rejected, counts.success, counts.retried, counts.failed}
