-- Fire due jobs (fenced; prelude first). Creating a slot's task and moving
-- the job's next fire time happen in this one script, and the task id is
-- `{job}@{slot}`, created only if it does not exist: a slot fires exactly
-- once whatever leader runs it, and a crash before the script leaves the
-- slot due for the next leader.
-- KEYS[4] schedule, KEYS[5] pending, KEYS[6] delayed, KEYS[7] running,
-- KEYS[8] wake, KEYS[9] tasks index, KEYS[10] seq
-- ARGV[3] task prefix, ARGV[4] job state prefix, ARGV[5] history prefix,
-- ARGV[6] active prefix, ARGV[7] held prefix, ARGV[8] control prefix,
-- ARGV[9] log prefix, ARGV[10] done prefix, ARGV[11] retention ms,
-- ARGV[12] log cap, then per job: id, slot it was due at, next slot ('' =
-- none), concurrency, slots skipped by the misfire policy, whether that
-- count is exact ('1') or a lower bound ('0', an outage too long to count),
-- n slots, the slots, m, then m field/value pairs of its tasks.
-- Returns the number of tasks created.
local now = now_ms()
local created = 0
local retention, cap = tonumber(ARGV[11]), tonumber(ARGV[12])
local i = 13
while i <= #ARGV do
  local job, due_at, next_slot, concurrency, missed = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local exact = ARGV[i + 5] == '1'
  local n = tonumber(ARGV[i + 6])
  local slots = {}
  for j = 1, n do slots[j] = ARGV[i + 6 + j] end
  i = i + 7 + n
  local m = tonumber(ARGV[i])
  local fields = {}
  for j = 1, 2 * m do fields[j] = ARGV[i + j] end
  i = i + 1 + 2 * m
  local state = ARGV[4] .. job
  local history = ARGV[5] .. job
  local active = ARGV[6] .. job
  local score = redis.call('ZSCORE', KEYS[4], job)
  -- Only if nobody moved the job meanwhile (edited, disabled, removed).
  if score and tonumber(score) == tonumber(due_at) then
    if next_slot == '' then
      redis.call('ZREM', KEYS[4], job)
    else
      redis.call('ZADD', KEYS[4], next_slot, job)
    end
    if missed > 0 then
      redis.call('HINCRBY', state, 'skips', missed)
      local count = exact and missed or ('more than ' .. missed)
      redis.call('LPUSH', history, now .. ' missed ' .. count .. ' slot(s) (misfire policy)')
    end
    for _, slot in ipairs(slots) do
      local id = job .. '@' .. slot
      local key = ARGV[3] .. id
      if redis.call('EXISTS', key) == 0 then
        local blocked = nil
        if concurrency ~= 'allow' then
          for _, other in ipairs(redis.call('SMEMBERS', active)) do
            local st = redis.call('HGET', ARGV[3] .. other, 'status')
            if not st or st == 'success' or st == 'failed' or st == 'cancelled' then
              redis.call('SREM', active, other)
            elseif concurrency == 'forbid' then
              blocked = other
            else
              cancel_task(other, {task = ARGV[3] .. other, pending = KEYS[5], delayed = KEYS[6],
                running = KEYS[7], log = ARGV[9] .. other, done = ARGV[10] .. other},
                {held = ARGV[7], control = ARGV[8]}, retention, cap, 'replaced by ' .. id)
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
          redis.call('ZADD', KEYS[5], pending_score(redis.call('HGET', key, 'priority') or 0,
            redis.call('INCR', KEYS[10])), id)
          redis.call('ZADD', KEYS[9], now, id)
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
if created > 0 then wake(KEYS[8]) end
return created
