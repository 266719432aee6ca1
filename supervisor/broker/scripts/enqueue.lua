-- enqueue.lua: add one job to a queue, at most once per job id.
--
-- KEYS[1]  stream      sv:{q}:stream
-- KEYS[2]  job hash    sv:{q}:job:<id>
-- KEYS[3]  delayed     sv:{q}:delayed
-- ARGV[1]  payload     the job message (JSON)
-- ARGV[2]  due         epoch ms; 0 or <= now: run now
-- ARGV[3]  now         epoch ms
-- ARGV[4]  ttl         seconds the job hash lives: the dedup window
-- ARGV[5]  task name   ARGV[6] created (epoch s)   ARGV[7] enqueuing host
-- ARGV[8]  force       '1': add even if the id is known (dead-letter requeue)
--
-- Guarantees: the job hash and the stream entry (or delayed member) are
-- written together or not at all, so a job never exists half-enqueued; while
-- the job hash lives, a second enqueue of the same id is a no-op, which makes
-- a producer's retry after a lost reply safe.
-- Returns 1 when added, 0 when the id already exists.
if ARGV[8] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local state = 'queued'
if tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  state = 'scheduled'
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'state', state, 'task', ARGV[5], 'created', ARGV[6],
           'enqueued_by', ARGV[7], 'attempt', '1')
redis.call('EXPIRE', KEYS[2], ARGV[4])
if state == 'scheduled' then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], 'due', ARGV[2])
else
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
end
return 1
