-- handback.lua: give held entries back to the queue without running them.
--
-- KEYS[1]  stream      sv:{q}:stream (each entry has one field, 'm': the job message)
-- KEYS[2]  running     sv:{q}:running
-- ARGV[1]  group       ARGV[2] consumer that must own the entries
-- ARGV[3..] triples of: entry id, message to re-add, job id
--
-- Used for jobs fetched but not started at shutdown or behind a slow job
-- (their message as fetched) and for jobs whose worker died (the message
-- with its crash count raised). The job goes to the tail of the stream as a
-- new entry, visible to every consumer; the old entry is acknowledged and
-- deleted in the same step, so the job is in the queue exactly once.
-- Entries no longer owned are left alone.
-- Returns how many entries were handed back.
local count = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], ARGV[i + 2])
    count = count + 1
  end
end
return count
