-- handback.lua: give held entries back to the queue without running them.
--
-- KEYS[1]  stream      sv:{q}:stream
-- KEYS[2]  running     sv:{q}:running
-- ARGV[1]  group       ARGV[2] consumer that must own the entries
-- ARGV[3..] triples of: entry id, message to re-add ('' = the entry's own), job id
--
-- Used for jobs fetched but not started at shutdown (message unchanged) and
-- for jobs whose worker died (message with its crash count raised). The job
-- goes to the tail of the stream as a new entry, visible to every consumer;
-- the old entry is acknowledged and deleted in the same step, so the job is
-- in the queue exactly once. Entries no longer owned are left alone.
-- Returns how many entries were handed back.
local count = 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    local payload = ARGV[i + 1]
    if payload == '' then
      local entry = redis.call('XRANGE', KEYS[1], id, id)
      if entry[1] then
        local fields = entry[1][2]
        for f = 1, #fields, 2 do
          if fields[f] == 'm' then payload = fields[f + 1] end
        end
      end
    end
    if payload ~= '' then
      redis.call('XADD', KEYS[1], '*', 'm', payload)
      count = count + 1
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], ARGV[i + 2])
  end
end
return count
