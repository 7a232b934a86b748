-- Worker: claim queued items and mark them running.
-- KEYS: the worker's queue, running, its registry entry
-- ARGV: node id, its process instance, how many more items to pop from the
-- queue, recovery grace ms, '1' when re-claiming items after an error that
-- may have hidden a successful call, then the items already popped
-- (`id|attempt`).
-- Only the process registered under the node id takes its work: a frozen
-- process whose entry expired and whose id a new process took gets the
-- error REPLACED and pops nothing.
-- An item is started only if its task is still pending on this worker with
-- the same attempt (or, when re-claiming, already running there with it);
-- anything else (cancelled, reassigned) is a stale item and is skipped.
-- Returns {id, attempt, executor, payload, timeout ms, job, dispatch latency
-- ms, queue wait ms}... per started task: the latency as dispatch_latency
-- (lib.lua) computes it, the wait from dispatch to now (both -1 when a time
-- is missing or the item is re-claimed), all on the Redis clock.
local queue, running, entry = KEYS[1], KEYS[2], KEYS[3]
local arg = reader(1)
local node, instance, more, grace, reclaim = arg(), arg(), tonumber(arg()), tonumber(arg()), arg() == '1'
local owner = redis.call('HGET', entry, 'instance')
if owner and owner ~= instance then
  return redis.error_reply('REPLACED node id ' .. node .. ' is registered by another process')
end
local items = {}
for item in arg do items[#items + 1] = item end
local now = now_ms()
if more > 0 then
  local popped = redis.call('RPOP', queue, more)
  if popped then
    for _, item in ipairs(popped) do items[#items + 1] = item end
  end
end
local out = {}
for _, item in ipairs(items) do
  local id, attempt = string.match(item, '^(.*)|(%d+)$')
  if id then
    local key = P.task .. id
    local f = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'executor', 'payload', 'timeout_ms', 'job',
      'ready_ms', 'next_attempt_ms', 'created_ms', 'dispatched_ms')
    local ours = f[2] == attempt and f[3] == node
    if ours and (f[1] == 'pending' or (f[1] == 'running' and reclaim)) then
      start_task(key, id, running, now, now + tonumber(f[6]) + grace)
      local latency, wait = -1, -1
      if f[1] == 'pending' then
        latency = dispatch_latency(f[8], f[10], f[9], f[11])
        if latency >= 0 then wait = math.max(now - tonumber(f[11]), 0) end
      end
      out[#out + 1] = {id, attempt, f[4], f[5] or 'null', f[6], f[7] or '', latency, wait}
    end
  end
end
return out
