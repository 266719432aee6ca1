-- take.lua: record which jobs of one queue a worker holds, and say which of them
-- were cancelled (the per-batch mark of taken jobs, learning cancels at no
-- extra round trip).
--
-- KEYS[1]  running     sv:{q}:running (job id -> "worker started-at")
-- KEYS[2]  cancels     sv:{q}:cancels (hash: job id -> the cancel JSON)
-- ARGV     pairs of: job id, "worker started-at"
--
-- Atomic with cancel.lua: a cancel that runs before this sees the job not
-- held and writes `cancelled` (this returns its id: the worker drops it); one
-- that runs after sees it held (the worker stops it, or it ends first).
-- Returns pairs of: id of the batch in the cancel hash, its cancel JSON.
redis.call('HSET', KEYS[1], unpack(ARGV))
if redis.call('HLEN', KEYS[2]) == 0 then
  return {}
end
local ids = {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
end
local infos = redis.call('HMGET', KEYS[2], unpack(ids))
local cancelled = {}
for i = 1, #ids do
  if infos[i] then
    cancelled[#cancelled + 1] = ids[i]
    cancelled[#cancelled + 1] = infos[i]
  end
end
return cancelled
