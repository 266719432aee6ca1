-- promote.lua: move due delayed jobs into the stream, a batch at a time.
--
-- KEYS[1]  delayed     sv:{q}:delayed (members: job messages, score: due ms)
-- KEYS[2]  stream      sv:{q}:stream
-- ARGV[1]  now         epoch ms
-- ARGV[2]  batch       most members moved by this call
-- ARGV[3]  job prefix  sv:{q}:job:  (job hashes share the queue's hash tag)
--
-- Any number of workers on any number of nodes may run this at once: read,
-- add and remove happen in one script, so each member is promoted once.
-- Returns how many jobs were promoted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, payload in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', payload)
  redis.call('ZREM', KEYS[1], payload)
  local ok, job = pcall(cjson.decode, payload)
  if ok and type(job) == 'table' and type(job.id) == 'string' then
    local key = ARGV[3] .. job.id
    if redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'state', 'queued')
    end
  end
end
return #due
