-- Scheduler tick, read half (fenced; prelude first): promote due delayed
-- tasks to pending, then return what the balancer needs: the live workers,
-- the head of `pending`, and the head of every park as far as the workers
-- that could take its tasks have free slots.
-- KEYS[4] delayed, KEYS[5] pending, KEYS[6] nodes, KEYS[7] seq, KEYS[8] wake,
-- KEYS[9] schedule, KEYS[10] parks index, KEYS[11] backlogs
-- ARGV[3] task prefix, ARGV[4] node prefix, ARGV[5] held prefix,
-- ARGV[6] most tasks to return from pending (and, apart, from parks),
-- ARGV[7] most delayed tasks to promote, ARGV[8] park prefix, ARGV[9] the
-- leader's default balancer
-- Returns {now, next delayed task or cron job ms or -1,
-- {id, info, held, draining}..., {id, executor, tags, balancer, route key,
-- score, park key or '' for pending, timeout ms, '1' if it has a wait
-- reason}..., {park key, size, kind}...,
-- most tasks the read took from pending}.
local now = now_ms()
-- Wake-ups queued so far are answered by this tick.
redis.call('DEL', KEYS[8])
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[7]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[4], id)
  local key = ARGV[3] .. id
  local f = redis.call('HMGET', key, 'status', 'priority')
  if f[1] == 'pending' or f[1] == 'retrying' then
    redis.call('ZADD', KEYS[5], pending_score(f[2] or 0, redis.call('INCR', KEYS[7])), id)
    redis.call('HSET', key, 'status', 'pending')
  end
end
local workers = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  local f = redis.call('HMGET', ARGV[4] .. id, 'info', 'draining')
  if f[1] then
    workers[#workers + 1] = {id, f[1], redis.call('SCARD', ARGV[5] .. id), f[2] or '0'}
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
    local f = redis.call('HMGET', ARGV[3] .. id, 'executor', 'tags', 'balancer', 'route_key',
      'timeout_ms', 'wait_reason')
    if f[1] then
      tasks[#tasks + 1] = {id, f[1], f[2] or '', f[3] or '', f[4] or '', head[i + 1], source,
        f[5] or '300000', f[6] and '1' or ''}
    else
      redis.call('ZREM', from, id)
    end
  end
end
local batch = tonumber(ARGV[6])

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
if limit > 0 then read_head(KEYS[5], limit, '') end
-- Backlogs: sources with more waiting tasks than the workers able to run
-- them have free slots. Once this tick has placed what it can, those
-- workers are full, so the balancer has no choice left for these tasks and
-- the worker that frees a slot may refill it itself (FINISH).
local backlogs = {}
if redis.call('ZCARD', KEYS[5]) > total_free then backlogs[#backlogs + 1] = KEYS[5] end

-- Parks: a park is read only as far as the live workers able to take its
-- tasks have free slots, so a backlog nobody can take costs one ZCARD per
-- tick.
local park_keys = redis.call('SMEMBERS', KEYS[10])
local parks = {}
if #park_keys > 0 then
  -- What each live worker offers and carries, only when parks need it.
  for _, w in ipairs(live) do
    w.offers, w.carries = {}, {}
    for _, e in ipairs(w.info.executors or {}) do w.offers[e] = true end
    for _, t in ipairs(w.info.tags or {}) do w.carries[t] = true end
  end
  local left = batch
  for _, park in ipairs(park_keys) do
    local size = redis.call('ZCARD', park)
    if size == 0 then
      redis.call('SREM', KEYS[10], park)
    else
      local name = string.sub(park, #ARGV[8] + 1)
      local node = string.match(name, '^node:(.*)$')
      local slots, kind = 0, 'node'
      if node then
        for _, w in ipairs(live) do
          if w.id == node then slots = w.free end
        end
      else
        kind = 'exec'
        local executor, tags = string.match(name, '^exec:([^|]*)|(.*)$')
        local capable = 0
        for _, w in ipairs(live) do
          local able = executor ~= nil and w.offers[executor] == true
          if able then
            for t in string.gmatch(tags, '[^,]+') do
              if not w.carries[t] then able = false end
            end
          end
          if able then
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

redis.call('DEL', KEYS[11])
if #backlogs > 0 then
  local fields = {}
  for _, b in ipairs(backlogs) do
    fields[#fields + 1] = b
    -- The default balancer rides along: a refill needs it, and reads it
    -- with the sources in one command.
    fields[#fields + 1] = ARGV[9]
  end
  redis.call('HSET', KEYS[11], unpack(fields))
end

local next_due = -1
for _, key in ipairs({KEYS[4], KEYS[9]}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] and (next_due < 0 or tonumber(head[2]) < next_due) then
    next_due = tonumber(head[2])
  end
end
return {now, next_due, workers, tasks, parks, limit}
