-- handback.lua: give held entries back to the queue without running them.
--
-- KEYS[1]  stream      sv:{q}:stream (each entry has one field, 'm': the job message),
--          or the priority level's sv:{q}:stream:pN the entries came from
-- KEYS[2]  running     sv:{q}:running
-- KEYS[3..] the record sv:{q}:job:<id> of each entry, in the order of the quadruples
--          (declared, so Redis Cluster routes the script and follows a migration)
-- then, after the records: sv:{q}:limits:held, :limits:count, :limits:waiting,
--          :limits:waits, sv:{q}:levels and the stream of each priority level 0..9
--          (sv:{q}:stream, sv:{q}:stream:p1 .. :p9): a job handed back frees its
--          concurrency slot and the job woken for it goes to its own level, see
--          limit_release.lua; its unique lock stays: it belongs to the job, which
--          is queued again, not to the worker
-- ARGV[1]  group       ARGV[2] consumer that must own the entries
-- ARGV[3..] quadruples of: entry id, message to re-add, job id, record ('' leaves the
--          job's record as it is; else it replaces it, keeping its time to live)
--
-- Used for jobs fetched but not started at shutdown or behind a slow job
-- (their message as fetched), for a job interrupted by a quick stop and for
-- jobs whose worker died (the message and record then tell how that attempt
-- ended, so the job's timeline keeps it). The job goes to the tail of the
-- stream as a new entry, visible to every consumer; the old entry is
-- acknowledged and deleted in the same step, so the job is in the queue
-- exactly once. Entries no longer owned are left alone.
-- Returns how many entries were handed back.
--! include limit_release
local count = 0
local record = 3
local limits = 3 + (#ARGV - 2) / 4
local jobs = {}
for i = 3, #ARGV, 4 do
  local key = KEYS[record]
  record = record + 1
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], ARGV[i + 2])
    jobs[#jobs + 1] = ARGV[i + 2]
    if ARGV[i + 3] ~= '' then
      redis.call('SET', key, ARGV[i + 3], 'KEEPTTL')
    end
    count = count + 1
  end
end
release_slots(limits, jobs)
return count
