-- cancel.lua: ask for one job to be cancelled, atomically.
--
-- KEYS[1]  record      sv:{q}:job:<id> (the job record, JSON)
-- KEYS[2]  running     sv:{q}:running (job id -> worker, while taken)
-- KEYS[3]  cancels     sv:{q}:cancels (hash: job id -> the cancel JSON, for workers)
-- KEYS[4]  the browse index of cancelled jobs sv:{q}:recent:cancelled (see settle.lua)
-- KEYS[5]  optional: the job's unique lock sv:{q}:unique:<digest> (its record's
--          "unique"), released here if it is the job's and the job is not held
-- ARGV[1]  job id
-- ARGV[2]  the cancel, JSON {"by", "at", "reason"}
-- ARGV[3]  when, epoch seconds (the record's finished_at)
--
-- Guarantees: a job that has ended (succeeded, failed, cancelled) is left
-- alone and its final state returned. A job no worker holds (queued,
-- scheduled, retrying) becomes `cancelled` here, and its id joins the
-- cancel hash, so whichever worker meets its stream entry (now, or once its
-- due time promotes it) acknowledges it without running it. A job a worker
-- holds keeps its state with `cancel_requested` added: its worker stops it
-- and writes `cancelled`, unless the job ends first, in which case its
-- outcome stays and `cancel_requested` records the late request.
-- The record is edited as text (not cjson: it would turn [] into {} and
-- round numbers): the first "state":"..." is the top-level one (records are
-- written with state as their fourth key; strings inside have escaped quotes).
-- Returns {what, state}: what is 'unknown' (no record), 'ended' (state is
-- the final one), 'running' or 'cancelled' (state: the one it had).
local raw = redis.call('GET', KEYS[1])
if not raw then
  return {'unknown', ''}
end
local state = string.match(raw, '"state":"(%a+)"')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return {'ended', state}
end
redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  if not string.find(raw, '"cancel_requested":', 1, true) then
    raw = string.sub(raw, 1, -2) .. ',"cancel_requested":' .. ARGV[2] .. '}'
    redis.call('SET', KEYS[1], raw, 'KEEPTTL')
  end
  return {'running', 'started'}
end
if KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])  -- it will never start: an equal job may be enqueued now
end
raw = string.gsub(raw, '"state":"%a+"', '"state":"cancelled"', 1)
raw = string.sub(raw, 1, -2) .. ',"finished_at":' .. ARGV[3] .. ',"cancelled":' .. ARGV[2] .. '}'
redis.call('SET', KEYS[1], raw, 'KEEPTTL')
-- Browsable as cancelled from now on, the way settle.lua indexes what it settles:
-- trimmed to the newest RECENT_MAX, the index living as long as its longest record.
local RECENT_MAX = 1000  -- broker/recent.py RECENT_MAX
redis.call('ZADD', KEYS[4], math.floor(tonumber(ARGV[3]) * 1000), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -RECENT_MAX - 1)
local lives = redis.call('TTL', KEYS[1])
if lives > 0 and redis.call('TTL', KEYS[4]) < lives then
  redis.call('EXPIRE', KEYS[4], lives)
end
return {'cancelled', state or ''}
