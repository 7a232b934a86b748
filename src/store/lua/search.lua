-- Read-only: one chunk of the dashboard's task search. Walks the task
-- index (`tasks`, newest first) from a cursor, reads each task's summary
-- fields and keeps those matching every filter given. Work is bounded by
-- ARGV[4] entries (the caller asks for at most 1,000 per call and 10,000
-- per request), whatever the size of the index.
-- KEYS: tasks index
-- ARGV: cursor id ('' = from the newest), cursor score (used when the
-- cursor id left the index), entries to examine, then the filters ('' =
-- none): status, job, executor, worker, id prefix, payload substring, error
-- substring, ended at or after (ms)
-- Returns {examined, last id, last score, exhausted (0/1), {row}...} with
-- row = {position in this chunk (1-based), id, score, status, executor,
-- job, worker, created ms, started ms, ended ms, attempt, error (first 300
-- bytes), progress, progress attempt}; absent fields are ''.
local idx = KEYS[1]
local arg = reader(1)
local cursor_id, cursor_score, n = arg(), arg(), tonumber(arg())
local status, job, executor, worker = arg(), arg(), arg(), arg()
local prefix, payload, err_sub, ended_after = arg(), arg(), arg(), tonumber(arg())
local start = 0
if cursor_id ~= '' then
  local r = redis.call('ZREVRANK', idx, cursor_id)
  if r then
    start = r + 1
  else
    start = redis.call('ZCOUNT', idx, '(' .. cursor_score, '+inf')
  end
end
local entries = redis.call('ZRANGE', idx, start, start + n - 1, 'REV', 'WITHSCORES')
local fields = {'status', 'executor', 'job', 'worker', 'created_ms', 'started_ms', 'ended_ms',
  'attempt', 'error', 'progress', 'progress_attempt'}
if payload ~= '' then fields[#fields + 1] = 'payload' end
local rows = {}
local last_id, last_score = '', ''
for j = 1, #entries, 2 do
  local id, score = entries[j], entries[j + 1]
  last_id, last_score = id, score
  local f = redis.call('HMGET', P.task .. id, unpack(fields))
  local ok = f[1] ~= false and f[1] ~= nil
  if ok and status ~= '' and f[1] ~= status then ok = false end
  if ok and executor ~= '' and f[2] ~= executor then ok = false end
  if ok and job ~= '' and f[3] ~= job then ok = false end
  if ok and worker ~= '' and f[4] ~= worker then ok = false end
  if ok and prefix ~= '' and string.sub(id, 1, #prefix) ~= prefix then ok = false end
  if ok and err_sub ~= '' and not (f[9] and string.find(f[9], err_sub, 1, true)) then ok = false end
  if ok and ended_after and not (f[7] and tonumber(f[7]) >= ended_after) then ok = false end
  if ok and payload ~= '' and not (f[12] and string.find(f[12], payload, 1, true)) then ok = false end
  if ok then
    local row = {tostring((j + 1) / 2), id, score}
    for k = 1, 11 do
      local v = f[k] or ''
      if k == 9 and #v > 300 then v = string.sub(v, 1, 300) end
      row[#row + 1] = v
    end
    rows[#rows + 1] = row
  end
end
local exhausted = 0
if #entries < 2 * n then exhausted = 1 end
return {#entries / 2, last_id, last_score, exhausted, rows}
