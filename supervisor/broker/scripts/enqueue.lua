-- enqueue.lua: add jobs to one queue, each at most once per job id.
--
-- KEYS[1]  stream      sv:{q}:stream
-- KEYS[2]  delayed     sv:{q}:delayed
-- ARGV[1]  now, epoch ms
-- ARGV[2]  job record key prefix sv:{q}:job: (records share the queue's hash tag)
-- then 3 values per job:
--   meta     "<job id> <due ms> <ttl> <force>": due <= now runs now, else the
--            job waits in the delayed set; ttl is how long the record lives
--            (the dedup window); force '1' adds it even if the id is known
--            (dead-letter requeue)
--   message  the job message (JSON)
--   record   the job record (JSON) to store
--
-- Guarantees: a job's record and its stream entry (or delayed member) are
-- written together or not at all, so no job exists half-enqueued. While
-- the record lives, enqueueing the same id again is a no-op (SET NX), which
-- makes a producer's retry after a lost reply safe.
-- Returns one flag per job: 1 added, 0 duplicate ignored.
local now = tonumber(ARGV[1])
local added = {}
for b = 3, #ARGV, 3 do
  local id, due, ttl, force = string.match(ARGV[b], '^(%S+) (%d+) (%d+) ([01])$')
  local stored = false
  if id then
    if force == '1' then
      stored = redis.call('SET', ARGV[2] .. id, ARGV[b + 2], 'EX', ttl)
    else
      stored = redis.call('SET', ARGV[2] .. id, ARGV[b + 2], 'NX', 'EX', ttl)
    end
  end
  if stored then
    if tonumber(due) > now then
      redis.call('ZADD', KEYS[2], due, ARGV[b + 1])
    else
      redis.call('XADD', KEYS[1], '*', 'm', ARGV[b + 1])
    end
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
