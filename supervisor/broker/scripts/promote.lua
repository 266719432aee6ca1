-- promote.lua: move due delayed jobs into the stream of their priority level, a batch
-- at a time.
--
-- KEYS[1]  delayed     sv:{q}:delayed (members: job messages, score: due ms)
-- KEYS[2..11] the stream of each priority level 0..9: sv:{q}:stream, sv:{q}:stream:p1
--          .. :p9 (each entry has one field, 'm': the job message)
-- KEYS[12] levels      sv:{q}:levels (set of the levels above 0 in use)
-- ARGV[1]  now         epoch ms
-- ARGV[2]  batch       most members moved by this call
--
-- A message of priority N > 0 begins {"v":1,"pr":N, (core/priority.py); any
-- other goes to level 0. A level a job is promoted to is listed in the levels
-- set in the same step, so workers read it.
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
  local level = tonumber(string.match(payload, '^{"v":1,"pr":(%d)[,}]') or 0)
  if level > 0 then
    redis.call('SADD', KEYS[12], level)
  end
  redis.call('XADD', KEYS[2 + level], '*', 'm', payload)
end
redis.call('ZREM', KEYS[1], unpack(due))
return #due
