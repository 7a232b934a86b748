-- Worker: record the outcome of attempts (a batch), retry or end the tasks,
-- then refill this worker's free slots from `pending` (below).
-- KEYS: running, the worker's held set, delayed, pending, wake, the
-- worker's registry entry, its queue, backlogs (source → the leader's
-- default balancer)
-- ARGV: node id, retention ms, log cap, the worker's capacity, dispatch
-- grace ms, its instance, its executors and its tags (comma lists; '' when
-- it takes no refill), how many refilled tasks to start at once (the worker
-- holds that many free pool threads; the rest go onto its queue), then per
-- outcome until the end: id, attempt, outcome (success|failed|timeout|
-- cancelled), result JSON, error text, random [0,1) for jitter, n log
-- lines, the n lines.
-- A report for an attempt whose outcome is written already is rejected as
-- stale too, but leaves `running` and the held set (a batch sent again
-- after a call that failed half-way: Redis keeps a script's writes up to an
-- error).
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
local running, held_key, delayed, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- (KEYS[7], the queue, is where `write_moves` pushes refilled items.)
local wake_key, entry, backlogs = KEYS[5], KEYS[6], KEYS[8]
local arg = reader(1)
local node_id, retention, cap, capacity = arg(), arg(), tonumber(arg()), tonumber(arg())
local grace, instance, executors, tags, direct = tonumber(arg()), arg(), arg(), arg(), tonumber(arg())
local now = now_ms()
-- Numbers passed to redis.call are formatted with printf on every call:
-- the hot path formats each one once per call.
local now_s = string.format('%d', now)
local accepted, rejected = 0, 0
local counts = {success = 0, retried = 0, failed = 0, timeout = 0}
-- Accepted attempts leave `running` and the held set in one command each
-- (after the loop): per-command overhead is most of a script's cost.
local ended = {}
local no_lines = {}
-- Globals cost a table lookup each time: the loops below use locals.
local call, task_prefix = redis.call, P.task
-- The success path builds no string it does not write (tags, log and
-- done keys only when needed).
for id in arg do
  local attempt, outcome, result, err, rnd = arg(), arg(), arg(), arg(), arg()
  local nlines = tonumber(arg())
  local lines = no_lines
  if nlines > 0 then
    local tag = '[attempt ' .. attempt .. '] '
    lines = {}
    for j = 1, nlines do lines[j] = tag .. arg() end
  end
  local key = task_prefix .. id
  local f = call('HMGET', key, 'status', 'attempt', 'worker', 'failures', 'waited', 'started_ms', 'logged')
  if f[2] ~= attempt or f[3] ~= node_id or (f[1] ~= 'running' and f[1] ~= 'cancelled') then
    rejected = rejected + 1
    -- This attempt's outcome is written already (a call that failed
    -- half-way, as a refused batch does, is sent again): it still leaves
    -- `running` and the held set.
    if f[2] == attempt and f[3] == node_id and (f[1] == 'success' or f[1] == 'failed' or f[1] == 'retrying') then
      ended[#ended + 1] = id
    end
    if f[1] then
      append_log(key, P.log .. id, {'[attempt ' .. attempt .. '] stale ' .. outcome .. ' from ' .. node_id ..
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
      if nlines > 0 then append_log(key, P.log .. id, lines, cap) end
      succeed_task(key, id, result, afield, avalue, now_s, f[4], f[5], logged, retention)
      counts.success = counts.success + 1
    else
      append_log(key, P.log .. id, lines, cap)
      if f[1] == 'cancelled' then
        call('HSET', key, afield, avalue)
        append_log(key, P.log .. id, {'[attempt ' .. attempt .. '] stopped after cancel'}, cap)
      else
        call('HSET', key, 'result', result, afield, avalue)
        local status = fail_task(key, id, attempt, outcome .. ': ' .. err, err, tonumber(rnd), now, delayed,
          retention, cap)
        if status == 'retrying' then
          counts.retried = counts.retried + 1
        else
          counts.failed = counts.failed + 1
        end
      end
    end
  end
end
if #ended > 0 then
  redis.call('SREM', held_key, unpack(ended))
  redis.call('ZREM', running, unpack(ended))
end
-- Moves up to the worker's free slots from the heads of the sources in
-- backlog it can take from (`pending`, executor parks; merged by score),
-- reading a few (4) more than that so that tasks for other workers at the head
-- do not stop a refill (the leader parks those). Returns how many, and
-- whether the leader is still needed (a slot left free, a task left).
local function refill()
  -- source → the leader's default balancer, for each source in backlog.
  local backlog = redis.call('HGETALL', backlogs)
  if #backlog == 0 then return {}, 0, true end
  local node = redis.call('HMGET', entry, 'instance', 'draining')
  if executors == '' or node[1] ~= instance or node[2] == '1' then return {}, 0, true end
  local free = capacity - redis.call('SCARD', held_key)
  if free <= 0 then return {}, 0, false end
  local offers, carries = set_of(split(executors)), set_of(split(tags))
  local sources, default = {}, nil
  for j = 1, #backlog, 2 do
    local source = backlog[j]
    default = backlog[j + 1]
    if source == pending then
      sources[#sources + 1] = source
    else
      local kind, executor, needs = park_target(source)
      if kind == 'exec' and can_run(offers, carries, executor, needs) then sources[#sources + 1] = source end
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
      d = string.format('%d', now + tonumber(timeout) + grace)
      deadlines[timeout] = d
    end
    return d
  end
  local items, started_rows, skipped = {}, {}, false
  local moves = new_moves()
  -- Sources lose their taken tasks in one command each, after the loop.
  local taken = {}
  for _, h in ipairs(heads) do
    local id, from = h[1], h[3]
    local key = task_prefix .. id
    -- Every field named here costs a scan of the hash, an absent one the
    -- whole hash: only what the common case needs.
    local f = call('HMGET', key, 'executor', 'tags', 'balancer', 'route_key', 'timeout_ms', 'wait_reason',
      'attempt', 'payload', 'job', 'ready_ms')
    local balancer = f[3] or default
    if not f[4] and balancer and balancer ~= 'consistent-hash' and can_run(offers, carries, f[1], f[2]) then
      local from_ids = taken[from]
      if not from_ids then
        from_ids = {}
        taken[from] = from_ids
      end
      from_ids[#from_ids + 1] = id
      local attempt = tostring(tonumber(f[7] or 0) + 1)
      local timeout = f[5] or '300000'
      -- HMGET gives false for a missing field.
      local parked = from ~= pending or f[6] ~= false
      if #started_rows < direct then
        dispatch_task(moves, key, id, node_id, attempt, now_s, deadline(timeout), parked, true)
        -- A retry is ready at its next attempt time.
        local next_attempt = nil
        if f[7] and f[7] ~= '0' then next_attempt = call('HGET', key, 'next_attempt_ms') end
        local latency = dispatch_latency(f[10], nil, next_attempt, now)
        started_rows[#started_rows + 1] = {id, attempt, f[1], f[8] or 'null', timeout, f[9] or '', latency, 0}
      else
        dispatch_task(moves, key, id, node_id, attempt, now_s, deadline(timeout), parked)
        queue_task(moves, node_id, id, attempt)
        items[#items + 1] = id
      end
      if #started_rows + #items == free then break end
    else
      skipped = true
    end
  end
  for from, ids in pairs(taken) do redis.call('ZREM', from, unpack(ids)) end
  write_moves(moves, running)
  if #started_rows + #items < free then
    -- A slot stays free: these sources are no backlog for this worker any
    -- more, and the leader decides again at its next read.
    redis.call('HDEL', backlogs, unpack(sources))
    return started_rows, #items, true
  end
  return started_rows, #items, skipped
end

local refilled, queued, needs_leader = refill()
if accepted > 0 then
  if needs_leader or counts.retried > 0 then wake(wake_key) end
  -- The minute's hash gets its TTL when it is created: a field that
  -- counts exactly `n` after the increment is new.
  local stats = P.stats .. math.floor(now / 60000)
  local fresh = false
  for field, n in pairs(counts) do
    if n > 0 and redis.call('HINCRBY', stats, field, n) == n then fresh = true end
  end
  if fresh then redis.call('PEXPIRE', stats, '86460000') end
end
return {accepted, rejected, counts.success, counts.retried, counts.failed, queued, refilled}
