-- Worker: claim queued items and mark them running.
-- KEYS[1] the worker's queue, KEYS[2] running
-- ARGV[1] node id, ARGV[2] task prefix, ARGV[3] how many more items to pop
-- from the queue, ARGV[4] recovery grace ms, ARGV[5] '1' when re-claiming
-- items after an error that may have hidden a successful call, ARGV[6..]
-- items already popped (`id|attempt`).
-- An item is started only if its task is still pending on this worker with
-- the same attempt (or, when re-claiming, already running there with it);
-- anything else (cancelled, reassigned) is a stale item and is skipped.
-- Returns {id, attempt, executor, payload, timeout ms, job, dispatch latency
-- ms, queue wait ms}... per started task: the latency runs from when the
-- task was ready (created, due, or its retry time) to its dispatch, the wait
-- from dispatch to now (-1 when a time is missing), all on the Redis clock.
local now = now_ms()
local items = {}
for i = 6, #ARGV do items[#items + 1] = ARGV[i] end
local more = tonumber(ARGV[3])
if more > 0 then
  local popped = redis.call('RPOP', KEYS[1], more)
  if popped then
    for _, item in ipairs(popped) do items[#items + 1] = item end
  end
end
local out = {}
for _, item in ipairs(items) do
  local id, attempt = string.match(item, '^(.*)|(%d+)$')
  if id then
    local key = ARGV[2] .. id
    local f = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'executor', 'payload', 'timeout_ms', 'job',
      'ready_ms', 'next_attempt_ms', 'created_ms', 'dispatched_ms')
    local ours = f[2] == attempt and f[3] == ARGV[1]
    if ours and (f[1] == 'pending' or (f[1] == 'running' and ARGV[5] == '1')) then
      redis.call('HSET', key, 'status', 'running', 'started_ms', now)
      redis.call('ZADD', KEYS[2], now + tonumber(f[6]) + tonumber(ARGV[4]), id)
      local ready = math.max(tonumber(f[8] or f[10] or 0), tonumber(f[9] or 0))
      local sent = tonumber(f[11] or -1)
      local latency, wait = -1, -1
      if sent >= 0 and ready > 0 and f[1] == 'pending' then
        latency, wait = math.max(sent - ready, 0), math.max(now - sent, 0)
      end
      out[#out + 1] = {id, attempt, f[4], f[5] or 'null', f[6], f[7] or '', latency, wait}
    end
  end
end
return out
