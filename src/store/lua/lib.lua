-- Shared helpers and the task moves, prepended to every script (after the
-- fence prelude). KIND (key kind -> suffix) and LOG_BYTES are prepended by
-- scripts.rs from the Rust definitions.
--
-- Keys: every key a caller can name arrives in KEYS. Keys a script finds at
-- run time (a task it picks from a ZSET, a worker from the registry index,
-- a task's log) are built from the namespace prefix of KEYS[1], hash tag
-- included (`P.task .. id`), never from an ARGV prefix: on a cluster the
-- script runs on the shard that holds KEYS[1], and so everything it touches.
local NS = string.match(KEYS[1] or '', '^{[^}]*}:')
if not NS then
  return redis.error_reply('ERR distsched script: KEYS[1] carries no namespace hash tag')
end
-- Built on first use: most calls need one or two of them.
local P = setmetatable({}, {__index = function(t, name)
  local v = NS .. assert(KIND[name], 'no key kind')
  rawset(t, name, v)
  return v
end})

-- Reads ARGV (or list `t`) in order from index `first`: each call returns
-- the next item, nil past the end. The order is the one the script's
-- builder in calls.rs sends.
local function reader(first, t)
  t = t or ARGV
  local i = first - 1
  return function()
    i = i + 1
    return t[i]
  end
end

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

-- A set (value -> true) of the items of array `items`.
local function set_of(items)
  local set = {}
  for _, v in ipairs(items or {}) do set[v] = true end
  return set
end

-- The items of comma list `list` ('' or nil: none).
local function split(list)
  local items = {}
  for v in string.gmatch(list or '', '[^,]+') do items[#items + 1] = v end
  return items
end

-- The capability rule: a worker that offers `executor` and carries every
-- tag of comma list `tags` can run the task (`offers`, `carries`: sets).
-- The balancer applies the same rule in Rust (`WorkerSlot::can_run`);
-- tests/script_keys.rs runs both over one table of cases.
local function can_run(offers, carries, executor, tags)
  if not executor or not offers[executor] then return false end
  for t in string.gmatch(tags or '', '[^,]+') do
    if not carries[t] then return false end
  end
  return true
end

-- What park `park` waits for, decoded from its key (built by
-- `Keys::park_for` and `Keys::park_for_node`, the one format):
-- 'exec', executor, tags (comma list) | 'node', node id | nil (not a park).
local function park_target(park)
  if string.sub(park, 1, #P.park) ~= P.park then return nil end
  local name = string.sub(park, #P.park + 1)
  local node = string.match(name, '^node:(.*)$')
  if node then return 'node', node end
  local executor, tags = string.match(name, '^exec:([^|]*)|(.*)$')
  if executor then return 'exec', executor, tags end
  return nil
end

--------------------------------------------------------------------------
-- Task moves. Each change of a task's place is one function below, called
-- by every script that makes it. The places: waiting (in `pending`, or in
-- one park, named by the task's `parked` field), delayed (waiting for a
-- time), on a worker (`worker` set, in its held set and in `running` with a
-- deadline; queued: status pending, its `id|attempt` item on the worker's
-- queue; running: status running), ended (success, failed, cancelled; kept
-- for the retention).
--------------------------------------------------------------------------

-- The shared-key writes of a batch of dispatches, sent once per key by
-- `write_moves` (per-command overhead is most of a script's cost).
local function new_moves()
  return {deadlines = {}, held = {}, queued = {}}
end

local function list_in(t, k)
  local l = t[k]
  if not l then
    l = {}
    t[k] = l
  end
  return l
end

-- Start: the fields a start writes (as multiple values, so they join an
-- HSET without a table), for `start_task` and for a dispatch that starts
-- the task at once (a refill).
local function started(now_s)
  return 'status', 'running', 'started_ms', now_s
end

-- Dispatch: a waiting task, already taken out of `pending` or its park by
-- the caller (the removal is the check that it still waited there), goes to
-- `worker` as attempt `attempt` (nil: the next one, counted here). It is
-- held by the worker and gets a running deadline (`deadline`, ms). `parked`:
-- it came from a park or has a wait reason to clear. `start`: it starts at
-- once (a refill with a free pool thread, which passes the attempt), in the
-- same HSET. Returns the
-- attempt.
local function dispatch_task(moves, key, id, worker, attempt, now_s, deadline, parked, start)
  if not attempt then
    attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'worker', worker, 'dispatched_ms', now_s)
  elseif start then
    redis.call('HSET', key, 'attempt', attempt, 'worker', worker, 'dispatched_ms', now_s, started(now_s))
  else
    redis.call('HSET', key, 'attempt', attempt, 'worker', worker, 'dispatched_ms', now_s)
  end
  if parked then redis.call('HDEL', key, 'wait_reason', 'parked') end
  local d = moves.deadlines
  d[#d + 1] = deadline
  d[#d + 1] = id
  local held = list_in(moves.held, worker)
  held[#held + 1] = id
  return attempt
end

-- Queue: a dispatched task's item goes onto its worker's queue (pushed in
-- dispatch order; the worker pops from the right).
local function queue_task(moves, worker, id, attempt)
  local q = list_in(moves.queued, worker)
  q[#q + 1] = id .. '|' .. attempt
end

-- Sends the batch's writes to `running`, the held sets and the queues.
local function write_moves(moves, running)
  if #moves.deadlines > 0 then redis.call('ZADD', running, unpack(moves.deadlines)) end
  for w, ids in pairs(moves.held) do redis.call('SADD', P.held .. w, unpack(ids)) end
  for w, items in pairs(moves.queued) do redis.call('LPUSH', P.queue .. w, unpack(items)) end
end

-- Start: a queued task begins running on its worker; its running deadline
-- counts from now.
local function start_task(key, id, running, now_s, deadline)
  redis.call('HSET', key, started(now_s))
  redis.call('ZADD', running, deadline, id)
end

-- The dispatch latency of an attempt (ms): from when the task was ready to
-- its dispatch. Ready is its `ready_ms` (`created_ms` for records written
-- before that field existed), or its retry time when that is later; -1
-- when a time is missing.
local function dispatch_latency(ready_ms, created_ms, next_attempt_ms, dispatched_ms)
  local ready = math.max(tonumber(ready_ms or created_ms or 0), tonumber(next_attempt_ms or 0))
  local sent = tonumber(dispatched_ms or -1)
  if ready <= 0 or sent < 0 then return -1 end
  return math.max(sent - ready, 0)
end

-- Back to pending: a task joins `pending` behind the tasks of its
-- priority (a fresh sequence number). `status`: its status now (a delayed
-- or retrying task becomes pending). `k`: {pending, seq}.
local function to_pending(key, id, k, priority, status)
  redis.call('ZADD', k.pending, pending_score(priority or 0, redis.call('INCR', k.seq)), id)
  if status ~= 'pending' then redis.call('HSET', key, 'status', 'pending') end
end

-- Hand back: a task dispatched to `worker` and not started goes back to
-- pending (its queue item goes stale; the attempt number stays spent).
-- `k`: {running, pending, seq}.
local function hand_back(key, id, worker, k)
  if worker then redis.call('SREM', P.held .. worker, id) end
  redis.call('ZREM', k.running, id)
  local priority = redis.call('HGET', key, 'priority')
  redis.call('HDEL', key, 'worker', 'dispatched_ms')
  to_pending(key, id, k, priority, 'pending')
end

-- End: keep the task (and its log) for the retention, and tell a waiter.
-- `waited` is the task's `waited` field when the caller has read it (nil:
-- read it here); `logged` is false when the caller knows the task has no
-- log (nil: expire it anyway).
local function end_task(key, id, status, retention, waited, logged)
  redis.call('PEXPIRE', key, retention)
  if logged ~= false then redis.call('PEXPIRE', P.log .. id, retention) end
  if waited == nil then waited = redis.call('HGET', key, 'waited') end
  if waited == '1' then
    local done = P.done .. id
    redis.call('LPUSH', done, status)
    redis.call('PEXPIRE', done, 60000)
  end
end

-- End (success): a running attempt succeeded; the caller has taken it out
-- of `running` and the held set. `failures`, `waited`: the task's fields as
-- the caller read them; `logged`: whether it has a log; `attempt_f`,
-- `attempt_v`: the attempt's field and value.
local function succeed_task(key, id, result, attempt_f, attempt_v, now_s, failures, waited, logged, retention)
  redis.call('HSET', key, 'status', 'success', 'ended_ms', now_s, 'result', result, attempt_f, attempt_v)
  if failures and failures ~= '0' then
    redis.call('HDEL', key, 'error', 'next_attempt_ms')
  end
  end_task(key, id, 'success', retention, waited or false, logged)
end

-- End (failed attempt): the caller has taken the attempt out of `running`
-- and the held set, and recorded it. While retries remain the task is
-- `retrying` in `delayed` after retry_delay × backoff^(failures-1), capped
-- by max_delay, ± jitter (`rnd` in [0, 1)); otherwise it ends `failed`.
-- `what` leads the log line. Returns the new status.
local function fail_task(key, id, attempt, what, err, rnd, now, delayed, retention, cap)
  local f = redis.call('HMGET', key, 'failures', 'max_retries', 'retry_delay_ms', 'backoff',
    'max_delay_ms', 'jitter')
  local failures = tonumber(f[1] or 0) + 1
  redis.call('HSET', key, 'failures', failures, 'error', err)
  local tag = '[attempt ' .. attempt .. '] '
  if failures <= tonumber(f[2] or 0) then
    local delay = tonumber(f[3] or 0) * (tonumber(f[4] or 1) ^ (failures - 1))
    local max_delay = tonumber(f[5] or 0)
    if max_delay > 0 and delay > max_delay then delay = max_delay end
    delay = math.floor(delay * (1 + tonumber(f[6] or 0) * (2 * rnd - 1)))
    redis.call('HSET', key, 'status', 'retrying', 'next_attempt_ms', now + delay)
    redis.call('ZADD', delayed, now + delay, id)
    append_log(key, P.log .. id, {tag .. what .. '; retry in ' .. delay .. 'ms'}, cap)
    return 'retrying'
  end
  redis.call('HSET', key, 'status', 'failed', 'ended_ms', now)
  append_log(key, P.log .. id, {tag .. what .. '; no retries left'}, cap)
  end_task(key, id, 'failed', retention)
  return 'failed'
end

-- End (cancelled): cancels task `id` wherever it is; returns its status
-- before ('' if none). Waiting (in `pending` or its park) or delayed:
-- ended at once. Queued on a worker but not started: ended at once, the
-- queue item goes stale and the slot is freed. Running: ended, and its
-- worker is told on its cancel list; the worker's report then frees the
-- slot. k: {pending, delayed, running}; retention ms; log cap; why (for
-- the log).
local function cancel_task(id, k, retention, cap, why)
  local key = P.task .. id
  local f = redis.call('HMGET', key, 'status', 'worker', 'attempt', 'parked')
  local status = f[1]
  if not status then return '' end
  if status == 'success' or status == 'failed' or status == 'cancelled' then
    return status
  end
  redis.call('ZREM', k.pending, id)
  if f[4] then
    redis.call('ZREM', f[4], id)
    redis.call('HDEL', key, 'parked', 'wait_reason')
  end
  redis.call('ZREM', k.delayed, id)
  redis.call('ZREM', k.running, id)
  if status == 'pending' and f[2] then
    redis.call('SREM', P.held .. f[2], id)
  elseif status == 'running' then
    local ctl = P.ctl .. f[2] .. ':cancel'
    redis.call('LPUSH', ctl, id .. '|' .. f[3])
    redis.call('PEXPIRE', ctl, 60000)
  end
  redis.call('HSET', key, 'status', 'cancelled', 'ended_ms', now_ms())
  append_log(key, P.log .. id, {why .. ' while ' .. status}, cap)
  end_task(key, id, 'cancelled', retention)
  return status
end

-- How attempt `attempt` ended, as stored in the task's own hash (field
-- `a<attempt>`, so it expires with the task): worker, start ms, end ms,
-- outcome, message, tab-separated. Returns the field and its value.
local function attempt_field(attempt, worker, started_ms, outcome, message, now)
  return 'a' .. attempt,
    (worker or '') .. '\t' .. (started_ms or '') .. '\t' .. now .. '\t' .. outcome .. '\t' .. (message or '')
end
