-- Fire due jobs (fenced; prelude first). Creating a slot's task and moving
-- the job's next fire time happen in this one script, and the task id is
-- `{job}@{slot}`, created only if it does not exist: a slot fires exactly
-- once whatever leader runs it, and a crash before the script leaves the
-- slot due for the next leader.
-- KEYS: (fence) schedule, pending, delayed, running, wake, tasks index,
-- seq, then per job (in ARGV's order): its state, history and active set
-- ARGV: (fence) retention ms, log cap, then per job until the end: id, slot
-- it was due at, next slot ('' = none), concurrency, slots skipped by the
-- misfire policy, whether that count is exact ('1') or a lower bound ('0',
-- an outage too long to count), n slots, the slots, m, then m field/value
-- pairs of its tasks.
-- Returns the number of tasks created.
local schedule, pending, delayed, running = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local wake_key, index, seq = KEYS[8], KEYS[9], KEYS[10]
local arg = reader(3)
local job_keys = reader(11, KEYS)
local retention, cap = tonumber(arg()), tonumber(arg())
local now = now_ms()
local created = 0
local k = {pending = pending, delayed = delayed, running = running, seq = seq}
for job in arg do
  local due_at, next_slot, concurrency, missed = arg(), arg(), arg(), tonumber(arg())
  local exact = arg() == '1'
  local slots = {}
  for j = 1, tonumber(arg()) do slots[j] = arg() end
  local fields = {}
  for j = 1, 2 * tonumber(arg()) do fields[j] = arg() end
  local state, history, active = job_keys(), job_keys(), job_keys()
  local score = redis.call('ZSCORE', schedule, job)
  -- Only if nobody moved the job meanwhile (edited, disabled, removed).
  if score and tonumber(score) == tonumber(due_at) then
    if next_slot == '' then
      redis.call('ZREM', schedule, job)
    else
      redis.call('ZADD', schedule, next_slot, job)
    end
    if missed > 0 then
      redis.call('HINCRBY', state, 'skips', missed)
      local count = exact and missed or ('more than ' .. missed)
      redis.call('LPUSH', history, now .. ' missed ' .. count .. ' slot(s) (misfire policy)')
    end
    for _, slot in ipairs(slots) do
      local id = job .. '@' .. slot
      local key = P.task .. id
      if redis.call('EXISTS', key) == 0 then
        local blocked = nil
        if concurrency ~= 'allow' then
          for _, other in ipairs(redis.call('SMEMBERS', active)) do
            local st = redis.call('HGET', P.task .. other, 'status')
            if not st or st == 'success' or st == 'failed' or st == 'cancelled' then
              redis.call('SREM', active, other)
            elseif concurrency == 'forbid' then
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
          redis.call('HSET', key, unpack(fields))
          to_pending(key, id, k, redis.call('HGET', key, 'priority'), 'pending')
          redis.call('ZADD', index, now, id)
          if concurrency ~= 'allow' then redis.call('SADD', active, id) end
          redis.call('HINCRBY', state, 'fired', 1)
          redis.call('HSET', state, 'last_fire_ms', slot, 'last_task', id)
          redis.call('LPUSH', history, now .. ' fired ' .. slot .. ' as ' .. id)
          created = created + 1
        end
      end
    end
    redis.call('LTRIM', history, 0, 49)
  end
end
if created > 0 then wake(wake_key) end
return created
