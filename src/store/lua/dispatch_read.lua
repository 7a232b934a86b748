-- Scheduler tick, read half (fenced; prelude first): promote due delayed
-- tasks to pending, then return what the balancer needs: the live workers,
-- the head of `pending`, and the head of every park as far as the workers
-- that could take its tasks have free slots.
-- KEYS: (fence) delayed, pending, nodes, seq, wake, schedule, parks index,
-- backlogs
-- ARGV: (fence) most tasks to return from pending (and, apart, from parks),
-- most delayed tasks to promote, the leader's default balancer
-- Returns {now, next delayed task or cron job ms or -1,
-- {id, info, held, draining}..., {id, executor, tags, balancer, route key,
-- score, park key or '' for pending, timeout ms, '1' if it has a wait
-- reason}..., {park key, size, kind}...,
-- most tasks the read took from pending}.
local delayed, pending, nodes, seq = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local wake_key, schedule, parks_index, backlogs_key = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local arg = reader(3)
local batch, promote, default_balancer = tonumber(arg()), tonumber(arg()), arg()
local now = now_ms()
-- Wake-ups queued so far are answered by this tick.
redis.call('DEL', wake_key)
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, promote)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  local key = P.task .. id
  local f = redis.call('HMGET', key, 'status', 'priority')
  if f[1] == 'pending' or f[1] == 'retrying' then
    to_pending(key, id, {pending = pending, seq = seq}, f[2], f[1])
  end
end
local workers = {}
for _, id in ipairs(redis.call('ZRANGE', nodes, 0, -1)) do
  local f = redis.call('HMGET', P.node .. id, 'info', 'draining')
  if f[1] then
    workers[#workers + 1] = {id, f[1], redis.call('SCARD', P.held .. id), f[2] or '0'}
  end
end
local tasks = {}
-- Reads up to `n` tasks of ZSET `from` (`source` is '' for pending, else
-- the park key), dropping orphans whose record is gone (expired or
-- deleted by hand).
local function read_head(from, n, source)
  local head = redis.call('ZRANGE', from, 0, n - 1, 'WITHSCORES')
  for i = 1, #head, 2 do
    local id = head[i]
    local f = redis.call('HMGET', P.task .. id, 'executor', 'tags', 'balancer', 'route_key',
      'timeout_ms', 'wait_reason')
    if f[1] then
      tasks[#tasks + 1] = {id, f[1], f[2] or '', f[3] or '', f[4] or '', head[i + 1], source,
        f[5] or '300000', f[6] and '1' or ''}
    else
      redis.call('ZREM', from, id)
    end
  end
end

-- Live, non-draining workers and their free slots. Capability is the
-- balancer's rule (offers the executor, carries every tag, not draining,
-- capacity above 0); the balancer re-checks it.
local live = {}
local total_free = 0
for _, w in ipairs(workers) do
  local ok, info = pcall(cjson.decode, w[2])
  if ok and type(info) == 'table' and w[4] ~= '1' then
    local cap = tonumber(info.capacity) or 0
    if cap > 0 then
      local free = cap - w[3]
      if free < 0 then free = 0 end
      total_free = total_free + free
      live[#live + 1] = {id = w[1], free = free, info = info}
    end
  end
end

-- Read from `pending` only as many tasks as there are free slots: with a
-- deep backlog and busy workers a tick costs a few commands, not a batch
-- of HMGETs (the hot path of a drain). Tasks read that cannot go anywhere
-- are parked by this tick, so the next one reads past them.
local limit = math.min(batch, total_free)
-- Not with 0: ZRANGE 0 -1 would read the whole backlog.
if limit > 0 then read_head(pending, limit, '') end
-- Backlogs: sources with more waiting tasks than the workers able to run
-- them have free slots. Once this tick has placed what it can, those
-- workers are full, so the balancer has no choice left for these tasks and
-- the worker that frees a slot may refill it itself (FINISH).
local backlogs = {}
if redis.call('ZCARD', pending) > total_free then backlogs[#backlogs + 1] = pending end

-- Parks: a park is read only as far as the live workers able to take its
-- tasks have free slots, so a backlog nobody can take costs one ZCARD per
-- tick.
local park_keys = redis.call('SMEMBERS', parks_index)
local parks = {}
if #park_keys > 0 then
  -- What each live worker offers and carries, only when parks need it.
  for _, w in ipairs(live) do
    w.offers, w.carries = set_of(w.info.executors), set_of(w.info.tags)
  end
  local left = batch
  for _, park in ipairs(park_keys) do
    local size = redis.call('ZCARD', park)
    if size == 0 then
      redis.call('SREM', parks_index, park)
    else
      local kind, target, tags = park_target(park)
      local slots = 0
      if kind == 'node' then
        for _, w in ipairs(live) do
          if w.id == target then slots = w.free end
        end
      else
        kind = 'exec'
        local capable = 0
        for _, w in ipairs(live) do
          if can_run(w.offers, w.carries, target, tags) then
            slots = slots + w.free
            capable = capable + 1
          end
        end
        if capable > 0 and size > slots then backlogs[#backlogs + 1] = park end
      end
      if slots > size then slots = size end
      if slots > left then slots = left end
      if slots > 0 then
        read_head(park, slots, park)
        left = left - slots
      end
      parks[#parks + 1] = {park, size, kind}
    end
  end
end

redis.call('DEL', backlogs_key)
if #backlogs > 0 then
  local fields = {}
  for _, b in ipairs(backlogs) do
    fields[#fields + 1] = b
    -- The default balancer rides along: a refill needs it, and reads it
    -- with the sources in one command.
    fields[#fields + 1] = default_balancer
  end
  redis.call('HSET', backlogs_key, unpack(fields))
end

local next_due = -1
for _, key in ipairs({delayed, schedule}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] and (next_due < 0 or tonumber(head[2]) < next_due) then
    next_due = tonumber(head[2])
  end
end
return {now, next_due, workers, tasks, parks, limit}
