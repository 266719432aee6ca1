-- promote.lua: move due delayed jobs into the stream, a batch at a time.
--
-- KEYS[1]  delayed     sv:{q}:delayed (members: job messages, score: due ms)
-- KEYS[2]  stream      sv:{q}:stream (each entry has one field, 'm': the job message)
-- ARGV[1]  now         epoch ms
-- ARGV[2]  batch       most members moved by this call
--
-- Any number of workers on any number of nodes may run this at once: read,
-- add and remove happen in one script, so each member is promoted once.
-- Job records are not touched: a reader sees a due "scheduled"/"retrying"
-- job as queued (see result.py), which keeps promotion cheap.
-- Returns how many jobs were promoted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due == 0 then
  return 0
end
for _, payload in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', payload)
end
redis.call('ZREM', KEYS[1], unpack(due))
return #due
