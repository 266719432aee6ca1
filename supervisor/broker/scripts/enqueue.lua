-- enqueue.lua: add jobs to one queue, each at most once per job id; in mode
-- 'tick', the same enqueue of one job, guarded so a periodic tick fires once.
--
-- KEYS[1]  stream       sv:{q}:stream (each entry has one field, 'm': the job message),
--          or sv:{q}:stream:pN for jobs of priority N (broker/levels.py: one call per level)
-- KEYS[2]  delayed      sv:{q}:delayed
-- KEYS[3]  schedules    sv:{q}:schedules (hash: schedule name -> last fire JSON); mode 'tick'
-- KEYS[4]  tick marker  sv:{q}:tick:<schedule>:<tick>; mode 'tick'
-- then one key per job, in the order of the jobs: its record sv:{q}:job:<id>
--          (KEYS[3..] in mode 'jobs', KEYS[5] in mode 'tick'). Every key is
--          declared, so Redis Cluster routes the script and follows a slot's
--          migration (a key built inside the script is "non local" there).
-- then, mode 'jobs', one key per job that has a unique lock (meta with a 5th
--          value), in the order of those jobs: its lock sv:{q}:unique:<digest>
-- then, for jobs of priority N > 0 only, the levels set sv:{q}:levels: N is
--          listed in it in this step (the stream's name ends with :pN), so a worker
--          that reads the set knows every level that holds a job, at no round trip
-- ARGV[1]  mode         'jobs' or 'tick'
-- ARGV[2]  now, epoch ms
-- mode 'tick' only: ARGV[3] schedule name, ARGV[4] tick (epoch s), ARGV[5] marker
--          ttl (s), ARGV[6] last fire JSON {"tick", "job_id", "fired_at", "node"}
-- then 3 values per job (mode 'tick': exactly one):
--   meta     "<job id> <due ms> <ttl> <force>[ <lock ttl>]": due <= now runs now,
--            else the job waits in the delayed set; ttl is how long the record
--            lives (the dedup window); force '1' adds it even if the id is known
--            (dead-letter requeue); a lock ttl (mode 'jobs') makes it a unique
--            job: added only if its lock (next lock key) is free or its own
--   message  the job message (JSON)
--   record   the job record (JSON) to store
--
-- Guarantees: a job's record and its stream entry (or delayed member) are
-- written together or not at all, so no job exists half-enqueued. While
-- the record lives, enqueueing the same id again is a no-op (SET NX), which
-- makes a producer's retry after a lost reply safe.
-- Mode 'tick' (every worker of every node runs it for every due tick): the
-- tick fires at most once (its marker is SET NX), never after a later tick
-- of the same schedule fired (the last fire recorded in the schedules hash
-- only moves forward), and marker, last fire and the job are written in this
-- one step, or none of them.
-- Unique jobs: the lock is taken (SET NX, the job id, EX lock ttl) in the same
-- step as the job is added, so of concurrent enqueues of equal jobs exactly one
-- adds a job and the others get its id; settle.lua (and cancel.lua for a job
-- not held) delete the lock in the step that ends the job, if it is still its.
-- Returns one flag per job: 1 added, 0 duplicate ignored, or the id of the job
-- holding the unique lock (nothing added). Mode 'tick': {} if
-- the tick had fired already (or is older than the last fire), else the flag
-- of its job ({0}: the tick is taken but its job id was already known).
local first, record = 3, 3
if ARGV[1] == 'tick' then
  local last = redis.call('HGET', KEYS[3], ARGV[3])
  if last then
    local ok, fired = pcall(cjson.decode, last)
    if ok and type(fired) == 'table' and tonumber(fired.tick)
        and tonumber(fired.tick) >= tonumber(ARGV[4]) then
      return {}
    end
  end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[5]) then
    return {}
  end
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[6])
  first, record = 7, 5
end
local now = tonumber(ARGV[2])
local added = {}
local lock = record + (#ARGV - first + 1) / 3  -- the first lock key, after the records
for b = first, #ARGV, 3 do
  local id, due, ttl, force, locked = string.match(ARGV[b], '^(%S+) (%d+) (%d+) ([01]) ?(%d*)$')
  local stored = false
  local key = KEYS[record]
  record = record + 1
  local holder = nil
  if id and locked ~= '' then
    if not redis.call('SET', KEYS[lock], id, 'NX', 'EX', locked) then
      holder = redis.call('GET', KEYS[lock])
      if holder == id then holder = nil end  -- its own lock: a retried enqueue
    end
    lock = lock + 1
  end
  if holder then
    id = nil
  end
  if id then
    if force == '1' then
      stored = redis.call('SET', key, ARGV[b + 2], 'EX', ttl)
    else
      stored = redis.call('SET', key, ARGV[b + 2], 'NX', 'EX', ttl)
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
    added[#added + 1] = holder or 0
  end
end
if KEYS[lock] then  -- the levels set: the key after the last lock
  redis.call('SADD', KEYS[lock], string.match(KEYS[1], ':p(%d)$'))
end
return added
