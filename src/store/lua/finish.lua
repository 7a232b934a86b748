-- Worker: record the outcome of attempts (a batch), retry or end the tasks,
-- then refill this worker's free slots from `pending` (below).
-- KEYS[1] running, KEYS[2] the worker's held set, KEYS[3] delayed,
-- KEYS[4] pending, KEYS[5] wake, KEYS[6] the worker's registry entry,
-- KEYS[7] the worker's queue, KEYS[8] backlogs (source → the leader's
-- default balancer)
-- ARGV[1] node id, ARGV[2] task prefix, ARGV[3] log prefix, ARGV[4] retention
-- ms, ARGV[5] log cap, ARGV[6] done prefix, ARGV[7] per-minute stats
-- prefix, ARGV[8] the worker's capacity, ARGV[9] dispatch grace ms,
-- ARGV[10] its instance, ARGV[11] its executors and ARGV[12] its tags
-- (comma lists), ARGV[13] park prefix, ARGV[14] how many refilled tasks
-- to start at once (the worker holds that many free pool threads; the
-- rest go onto its queue), then per outcome: id, attempt,
-- outcome (success|failed|timeout|cancelled), result JSON, error text,
-- random [0,1) for jitter, n log lines, the n lines.
-- A report for an attempt that is no longer the task's current one on this
-- worker (recovered, reassigned, or a zombie worker) changes nothing.
-- Accepted outcomes are also counted in this minute's stats hash (for the
-- `stats` rates), in the same script so a retried batch cannot count twice.
--
-- Refill: with a backlog every capable worker is full, so the balancer can
-- only give the next task to the worker that frees a slot. The leader's
-- dispatch read names the sources in backlog (`backlogs`: more tasks
-- waiting than the able workers have free slots); this call gives the
-- next task at once, from those of `pending` and the executor parks, as the
-- leader's dispatch does (attempt + 1, held, running deadline), and starts
-- as many as the worker has idle pool threads for (the rest go onto its
-- queue), so the leader's round per refill drops out of the hot path. Only
-- tasks the balancer would place there without a choice qualify: the
-- worker offers the executor and carries the tags, and the task is not
-- placed by key (`consistent-hash`, named or the leader's default, goes to
-- its owner). The worker must be registered under this instance and not
-- draining (nor stopping: it then sends no executors), and queued +
-- running stays within its capacity. The leader is woken when a slot
-- stayed free, a task at the head was left for others, or a retry was
-- scheduled: then it has work this call did not do.
-- Returns {accepted, rejected, succeeded, retried, failed (ended), tasks
-- refilled onto the queue, {id, attempt, executor, payload, timeout ms,
-- job, dispatch latency ms, queue wait ms}... per task refilled and
-- started (as START returns them)}.
local now = now_ms()
-- Numbers passed to redis.call are formatted with printf on every call:
-- the hot path formats each one once per call.
local now_s = string.format('%d', now)
local retention = ARGV[4]
local cap = tonumber(ARGV[5])
local accepted, rejected = 0, 0
local counts = {success = 0, retried = 0, failed = 0, timeout = 0}
-- Accepted attempts leave `running` and the held set in one command each
-- (after the loop): per-command overhead is most of a script's cost.
local ended = {}
local no_lines = {}
-- Globals cost a table lookup each time: the loops below use locals.
local call, args, node_id = redis.call, ARGV, ARGV[1]
local task_prefix, log_prefix = ARGV[2], ARGV[3]
local i, n = 15, #ARGV
-- The success path builds no string it does not write (tags, log and
-- done keys only when needed).
while i <= n do
  local id, attempt, outcome, result, err, rnd = args[i], args[i + 1], args[i + 2], args[i + 3], args[i + 4], args[i + 5]
  local nlines = tonumber(args[i + 6])
  local lines = no_lines
  if nlines > 0 then
    local tag = '[attempt ' .. attempt .. '] '
    lines = {}
    for j = 1, nlines do lines[j] = tag .. args[i + 6 + j] end
  end
  i = i + 7 + nlines
  local key = task_prefix .. id
  local f = call('HMGET', key, 'status', 'attempt', 'worker', 'failures', 'waited', 'started_ms', 'logged')
  if f[2] ~= attempt or f[3] ~= node_id or (f[1] ~= 'running' and f[1] ~= 'cancelled') then
    rejected = rejected + 1
    if f[1] then
      append_log(key, log_prefix .. id, {'[attempt ' .. attempt .. '] stale ' .. outcome .. ' from ' .. node_id ..
        ' rejected (current attempt ' .. tostring(f[2]) .. ', status ' .. f[1] .. ')'}, cap)
    end
  else
    accepted = accepted + 1
    ended[#ended + 1] = id
    if outcome == 'timeout' then counts.timeout = counts.timeout + 1 end
    local afield, avalue = attempt_field(attempt, node_id, f[6], outcome, err, now_s)
    if outcome == 'success' and f[1] == 'running' then
      -- The hot path: one write for the whole outcome.
      local logged = f[7] == '1' or nlines > 0
      local logkey = logged and log_prefix .. id
      if nlines > 0 then append_log(key, logkey, lines, cap) end
      call('HSET', key, 'status', 'success', 'ended_ms', now_s, 'result', result, afield, avalue)
      if f[4] and f[4] ~= '0' then
        call('HDEL', key, 'error', 'next_attempt_ms')
      end
      local waited = f[5] or false
      end_task(key, logkey, waited == '1' and ARGV[6] .. id, 'success', retention, waited, logged)
      counts.success = counts.success + 1
    else
      local tag = '[attempt ' .. attempt .. '] '
      local logkey = log_prefix .. id
      append_log(key, logkey, lines, cap)
      if f[1] == 'cancelled' then
        call('HSET', key, afield, avalue)
        append_log(key, logkey, {tag .. 'stopped after cancel'}, cap)
      else
        redis.call('HSET', key, 'result', result, afield, avalue)
        local status, delay = fail_attempt(key, id, KEYS[3], now, err, tonumber(rnd))
        if status == 'retrying' then
          append_log(key, logkey, {tag .. outcome .. ': ' .. err .. '; retry in ' .. delay .. 'ms'}, cap)
          counts.retried = counts.retried + 1
        else
          append_log(key, logkey, {tag .. outcome .. ': ' .. err .. '; no retries left'}, cap)
          end_task(key, logkey, ARGV[6] .. id, 'failed', retention)
          counts.failed = counts.failed + 1
        end
      end
    end
  end
end
if #ended > 0 then
  redis.call('SREM', KEYS[2], unpack(ended))
  redis.call('ZREM', KEYS[1], unpack(ended))
end
-- Moves up to the worker's free slots from the heads of the sources in
-- backlog it can take from (`pending`, executor parks; merged by score),
-- reading a few (4) more than that so that tasks for other workers at the head
-- do not stop a refill (the leader parks those). Returns how many, and
-- whether the leader is still needed (a slot left free, a task left).
local function refill()
  -- source → the leader's default balancer, for each source in backlog.
  local backlog = redis.call('HGETALL', KEYS[8])
  if #backlog == 0 then return {}, 0, true end
  local node = redis.call('HMGET', KEYS[6], 'instance', 'draining')
  if ARGV[11] == '' or node[1] ~= ARGV[10] or node[2] == '1' then return {}, 0, true end
  local free = tonumber(ARGV[8]) - redis.call('SCARD', KEYS[2])
  if free <= 0 then return {}, 0, false end
  local offers, carries = {}, {}
  for e in string.gmatch(ARGV[11], '[^,]+') do offers[e] = true end
  for t in string.gmatch(ARGV[12], '[^,]+') do carries[t] = true end
  local function carried(tags)
    if not tags or tags == '' then return true end
    for t in string.gmatch(tags, '[^,]+') do
      if not carries[t] then return false end
    end
    return true
  end
  local sources, default = {}, nil
  local exec_prefix = ARGV[13] .. 'exec:'
  for j = 1, #backlog, 2 do
    local source = backlog[j]
    default = backlog[j + 1]
    if source == KEYS[4] then
      sources[#sources + 1] = source
    elseif string.sub(source, 1, #exec_prefix) == exec_prefix then
      local executor, tags = string.match(string.sub(source, #exec_prefix + 1), '^([^|]*)|(.*)$')
      if executor and offers[executor] and carried(tags) then sources[#sources + 1] = source end
    end
  end
  if #sources == 0 then return {}, 0, true end
  -- Scores only when two sources have tasks, so a merge is needed:
  -- formatting them is a good part of this call's cost.
  local heads, got = {}, {}
  for _, from in ipairs(sources) do
    local ids = redis.call('ZRANGE', from, '0', free + 3)
    if #ids > 0 then got[#got + 1] = {from, ids} end
  end
  if #got == 1 then
    for _, id in ipairs(got[1][2]) do heads[#heads + 1] = {id, 0, got[1][1]} end
  elseif #got > 1 then
    for _, g in ipairs(got) do
      local scores = redis.call('ZMSCORE', g[1], unpack(g[2]))
      for j, id in ipairs(g[2]) do heads[#heads + 1] = {id, tonumber(scores[j]), g[1]} end
    end
    table.sort(heads, function(x, y) return x[2] < y[2] end)
  end
  local deadlines = {}
  local function deadline(timeout)
    local d = deadlines[timeout]
    if not d then
      d = string.format('%d', now + tonumber(timeout) + tonumber(ARGV[9]))
      deadlines[timeout] = d
    end
    return d
  end
  local direct = tonumber(ARGV[14])
  local items, started, skipped = {}, {}, false
  -- What the moves write to shared keys, sent as one command per key after
  -- the loop.
  local taken, deadlined, held = {}, {}, {}
  for _, h in ipairs(heads) do
    local id, from = h[1], h[3]
    local key = task_prefix .. id
    -- Every field named here costs a scan of the hash, an absent one the
    -- whole hash: only what the common case needs.
    local f = call('HMGET', key, 'executor', 'tags', 'balancer', 'route_key', 'timeout_ms', 'wait_reason',
      'attempt', 'payload', 'job', 'ready_ms')
    local balancer = f[3] or default
    if f[1] and offers[f[1]] and not f[4] and balancer and balancer ~= 'consistent-hash' and carried(f[2]) then
      local from_ids = taken[from]
      if not from_ids then
        from_ids = {}
        taken[from] = from_ids
      end
      from_ids[#from_ids + 1] = id
      local attempt = tostring(tonumber(f[7] or 0) + 1)
      local timeout = f[5] or '300000'
      deadlined[#deadlined + 1] = deadline(timeout)
      deadlined[#deadlined + 1] = id
      held[#held + 1] = id
      if #started < direct then
        call('HSET', key, 'attempt', attempt, 'worker', node_id, 'dispatched_ms', now_s,
          'status', 'running', 'started_ms', now_s)
        -- Every task gets `ready_ms` when created; a retry is ready at
        -- its next attempt time.
        local ready = tonumber(f[10] or 0)
        if f[7] and f[7] ~= '0' then
          ready = math.max(ready, tonumber(call('HGET', key, 'next_attempt_ms') or 0))
        end
        local latency = -1
        if ready > 0 then latency = math.max(now - ready, 0) end
        started[#started + 1] = {id, attempt, f[1], f[8] or 'null', timeout, f[9] or '', latency, 0}
      else
        call('HSET', key, 'attempt', attempt, 'worker', node_id, 'dispatched_ms', now_s)
        items[#items + 1] = id .. '|' .. attempt
      end
      if from ~= KEYS[4] then
        call('HDEL', key, 'wait_reason', 'parked')
      elseif f[6] then
        call('HDEL', key, 'wait_reason')
      end
      if #started + #items == free then break end
    else
      skipped = true
    end
  end
  for from, ids in pairs(taken) do redis.call('ZREM', from, unpack(ids)) end
  if #held > 0 then
    redis.call('ZADD', KEYS[1], unpack(deadlined))
    redis.call('SADD', KEYS[2], unpack(held))
  end
  if #items > 0 then redis.call('LPUSH', KEYS[7], unpack(items)) end
  if #started + #items < free then
    -- A slot stays free: these sources are no backlog for this worker any
    -- more, and the leader decides again at its next read.
    redis.call('HDEL', KEYS[8], unpack(sources))
    return started, #items, true
  end
  return started, #items, skipped
end

local started, queued, needs_leader = refill()
if accepted > 0 then
  if needs_leader or counts.retried > 0 then wake(KEYS[5]) end
  -- The minute's hash gets its TTL when it is created: a field that
  -- counts exactly `n` after the increment is new.
  local stats = ARGV[7] .. math.floor(now / 60000)
  local fresh = false
  for field, n in pairs(counts) do
    if n > 0 and redis.call('HINCRBY', stats, field, n) == n then fresh = true end
  end
  if fresh then redis.call('PEXPIRE', stats, '86460000') end
end
return {accepted, rejected, counts.success, counts.retried, counts.failed, queued, started}
