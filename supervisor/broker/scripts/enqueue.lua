-- enqueue.lua: add jobs to one queue, each at most once per job id.
--
-- KEYS[1]    stream      sv:{q}:stream
-- KEYS[2]    delayed     sv:{q}:delayed
-- KEYS[3..]  job records sv:{q}:job:<id>, one per job, in ARGV order
-- ARGV[1]    now, epoch ms
-- then 5 values per job:
--   message  the job message (JSON)
--   due      epoch ms; <= now: run now, else wait in the delayed set
--   ttl      seconds the job record lives: the dedup window
--   record   the job record (JSON) to store
--   force    '1': add even if the id is known (dead-letter requeue)
--
-- Guarantees: a job's record and its stream entry (or delayed member) are
-- written together or not at all, so no job exists half-enqueued. While
-- the record lives, enqueueing the same id again is a no-op (SET NX), which
-- makes a producer's retry after a lost reply safe.
-- Returns one flag per job: 1 added, 0 duplicate ignored.
local now = tonumber(ARGV[1])
local added = {}
for i = 3, #KEYS do
  local base = 2 + (i - 3) * 5
  local due = tonumber(ARGV[base + 1])
  local stored
  if ARGV[base + 4] == '1' then
    stored = redis.call('SET', KEYS[i], ARGV[base + 3], 'EX', ARGV[base + 2])
  else
    stored = redis.call('SET', KEYS[i], ARGV[base + 3], 'NX', 'EX', ARGV[base + 2])
  end
  if stored then
    if due > now then
      redis.call('ZADD', KEYS[2], due, ARGV[base])
    else
      redis.call('XADD', KEYS[1], '*', 'm', ARGV[base])
    end
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
