-- Mark a job broken, or clear its mark (fenced; prelude first). A broken
-- job is one whose stored record does not parse or whose firing failed:
-- the scheduler skips it and retries it later, and every other job fires.
-- KEYS: (fence) job state, broken set, schedule, job history
-- ARGV: (fence) job id, kind ('record' or 'firing'; '' = clear the mark),
-- message, retry delay ms ('' = leave the schedule alone), then the scores
-- the schedule may hold for the job: it is moved to now + delay only from
-- one of them (not if someone edited it meanwhile).
-- Returns 1 when the mark changed (set, new message, or cleared), else 0.
local state, broken, schedule, history = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local arg = reader(3)
local id, kind, message, delay = arg(), arg(), arg(), arg()
local now = now_ms()
-- The history may be what is broken (wrong type): never fail on it.
local function note(line)
  redis.pcall('LPUSH', history, now .. ' ' .. line)
  redis.pcall('LTRIM', history, 0, 49)
end
if kind == '' then
  redis.call('SREM', broken, id)
  if redis.call('HEXISTS', state, 'error') == 0 then return 0 end
  redis.call('HDEL', state, 'error', 'error_kind', 'error_ms')
  note('recovered: fires again')
  return 1
end
local changed = 0
if redis.call('HGET', state, 'error') ~= message then
  redis.call('HSET', state, 'error', message, 'error_kind', kind, 'error_ms', now)
  note('error (' .. kind .. '): ' .. message)
  changed = 1
end
redis.call('SADD', broken, id)
if delay ~= '' then
  local score = redis.call('ZSCORE', schedule, id)
  if score then
    for from in arg do
      if tonumber(score) == tonumber(from) then
        redis.call('ZADD', schedule, now + tonumber(delay), id)
        break
      end
    end
  end
end
return changed
