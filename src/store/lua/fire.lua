-- Fire due jobs (fenced; prelude first). Creating a slot's task and moving
-- the job's next fire time happen in this one script, inputs checked
-- before any write and the task created before the schedule moves, and
-- the task id is `{job}@{slot}`, created only if it does not exist: a slot
-- fires exactly once whatever leader runs it, and a crash or an error
-- before the schedule moves leaves the slot due for the next tick.
-- KEYS: (fence) schedule, pending, delayed, running, wake, tasks index,
-- seq, expiring, then per job (in ARGV's order): its state, history and
-- active set
-- ARGV: (fence) retention ms, log cap, then per job until the end: id, slot
-- it was due at, next slot ('' = none), concurrency, slots skipped by the
-- misfire policy, whether that count is exact ('1') or a lower bound ('0',
-- an outage too long to count), its tasks' start-by deadline ms from their
-- creation (0 = none), n slots, the slots, m, then m field/value pairs of
-- its tasks.
-- Returns the number of tasks created.
local schedule, pending, delayed, running = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local wake_key, index, seq, expiring = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local arg = reader(3)
local job_keys = reader(12, KEYS)
local retention, cap = tonumber(arg()), tonumber(arg())
local now = now_ms()
local created = 0
local k = {pending = pending, delayed = delayed, running = running, seq = seq}

-- Every input is checked before anything is written: Redis keeps a
-- script's writes up to an error, and a half-done firing could lose a slot.
local jobs = {}
local function bad(job, what)
  return redis.error_reply('ERR FIRE: job ' .. tostring(job) .. ': ' .. what)
end
local concurrencies = {allow = true, forbid = true, replace = true}
for job in arg do
  local j = {id = job, due_at = tonumber(arg()), next_slot = arg(), concurrency = arg(), missed = tonumber(arg())}
  j.exact = arg() == '1'
  j.expires = tonumber(arg())
  if not j.expires then return bad(job, 'bad start-by deadline') end
  if not j.due_at or not j.next_slot or (j.next_slot ~= '' and not tonumber(j.next_slot)) then
    return bad(job, 'bad due or next slot')
  end
  if not concurrencies[j.concurrency] or not j.missed then return bad(job, 'bad policy or skip count') end
  local n = tonumber(arg())
  if not n or n < 0 then return bad(job, 'bad slot count') end
  j.slots = {}
  for s = 1, n do
    local slot = arg()
    if not tonumber(slot) then return bad(job, 'bad slot') end
    j.slots[s] = slot
  end
  local m = tonumber(arg())
  if not m or m < 0 then return bad(job, 'bad field count') end
  j.fields = {}
  for f = 1, 2 * m do
    local v = arg()
    if not v then return bad(job, 'missing fields') end
    j.fields[f] = v
  end
  j.state, j.history, j.active = job_keys(), job_keys(), job_keys()
  if not j.active then return bad(job, 'missing keys') end
  jobs[#jobs + 1] = j
end

for _, j in ipairs(jobs) do
  local job, state, history, active = j.id, j.state, j.history, j.active
  local score = redis.call('ZSCORE', schedule, job)
  -- Only if nobody moved the job meanwhile (edited, disabled, removed).
  if score and tonumber(score) == j.due_at then
    -- The slots' tasks first, the schedule after: an error between them
    -- leaves the slot due, to fire (once: the task ids are the slots') at
    -- the next tick.
    for _, slot in ipairs(j.slots) do
      local id = job .. '@' .. slot
      local key = P.task .. id
      if redis.call('EXISTS', key) == 0 then
        local blocked = nil
        if j.concurrency ~= 'allow' then
          for _, other in ipairs(redis.call('SMEMBERS', active)) do
            local st = redis.call('HGET', P.task .. other, 'status')
            if not st or st == 'success' or st == 'failed' or st == 'cancelled' then
              redis.call('SREM', active, other)
            elseif j.concurrency == 'forbid' then
              blocked = other
            else
              cancel_task(other, k, retention, cap, 'replaced by ' .. id)
              redis.call('SREM', active, other)
              redis.call('LPUSH', history, now .. ' replaced ' .. other .. ' with ' .. id)
            end
          end
        end
        if blocked then
          redis.call('HINCRBY', state, 'skips', 1)
          redis.call('LPUSH', history, now .. ' skipped ' .. slot .. ': ' .. blocked .. ' still active (forbid)')
        else
          -- The fields every result and dispatch reads first (see submit).
          redis.call('HSET', key, 'status', 'pending', 'attempt', 0, 'failures', 0,
            'ready_ms', now, 'created_ms', now, 'slot_ms', slot, 'id', id)
          if #j.fields > 0 then redis.call('HSET', key, unpack(j.fields)) end
          to_pending(key, id, k, redis.call('HGET', key, 'priority'), 'pending')
          redis.call('ZADD', index, now, id)
          if j.expires > 0 then
            redis.call('HSET', key, 'expires_ms', now + j.expires)
            redis.call('ZADD', expiring, now + j.expires, id)
          end
          if j.concurrency ~= 'allow' then redis.call('SADD', active, id) end
          redis.call('HINCRBY', state, 'fired', 1)
          redis.call('HSET', state, 'last_fire_ms', slot, 'last_task', id)
          redis.call('LPUSH', history, now .. ' fired ' .. slot .. ' as ' .. id)
          created = created + 1
        end
      end
    end
    if j.next_slot == '' then
      redis.call('ZREM', schedule, job)
    else
      redis.call('ZADD', schedule, j.next_slot, job)
    end
    if j.missed > 0 then
      redis.call('HINCRBY', state, 'skips', j.missed)
      local count = j.exact and j.missed or ('more than ' .. j.missed)
      redis.call('LPUSH', history, now .. ' missed ' .. count .. ' slot(s) (misfire policy)')
    end
    redis.call('LTRIM', history, 0, 49)
  end
end
if created > 0 then wake(wake_key) end
return created
