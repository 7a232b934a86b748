-- Store a job definition and (re)schedule it.
-- KEYS[1] jobs, KEYS[2] schedule, KEYS[3] job state, KEYS[4] wake
-- ARGV[1] id, ARGV[2] JSON, ARGV[3] 'create' (fail if it exists) or 'upsert',
-- ARGV[4] next fire ms ('' = not scheduled: on demand or disabled),
-- ARGV[5] schedule key (cron + zone + enabled): when unchanged, an upsert
-- keeps the stored next fire time, so re-syncing a jobs file does not move
-- or re-fire slots.
-- Returns 1 created, 2 updated, 0 exists (create mode).
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if exists and ARGV[3] == 'create' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  local same = redis.call('HGET', KEYS[3], 'schedule_key') == ARGV[5]
  if not (same and redis.call('ZSCORE', KEYS[2], ARGV[1])) then
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  end
end
redis.call('HSET', KEYS[3], 'schedule_key', ARGV[5])
wake(KEYS[4])
if exists then return 2 end
return 1
