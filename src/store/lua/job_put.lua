-- Store a job definition and (re)schedule it.
-- KEYS: jobs, schedule, the job's state, wake
-- ARGV: id, JSON, 'create' (fail if it exists) or 'upsert', next fire ms
-- ('' = not scheduled: on demand or disabled), schedule key (cron + zone +
-- enabled): when unchanged, an upsert keeps the stored next fire time, so
-- re-syncing a jobs file does not move or re-fire slots.
-- Returns 1 created, 2 updated, 0 exists (create mode).
local jobs, schedule, state, wake_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local arg = reader(1)
local id, json, mode, next_fire, schedule_key = arg(), arg(), arg(), arg(), arg()
local exists = redis.call('HEXISTS', jobs, id) == 1
if exists and mode == 'create' then return 0 end
redis.call('HSET', jobs, id, json)
if next_fire == '' then
  redis.call('ZREM', schedule, id)
else
  local same = redis.call('HGET', state, 'schedule_key') == schedule_key
  if not (same and redis.call('ZSCORE', schedule, id)) then
    redis.call('ZADD', schedule, next_fire, id)
  end
end
redis.call('HSET', state, 'schedule_key', schedule_key)
wake(wake_key)
if exists then return 2 end
return 1
