-- fire_tick.lua: enqueue one tick of a periodic schedule, once across all nodes.
--
-- KEYS[1]  tick marker  sv:{q}:tick:<schedule>:<tick>
-- KEYS[2]  schedules    sv:{q}:schedules (hash: schedule name -> last fire JSON)
-- KEYS[3]  stream       sv:{q}:stream
-- KEYS[4]  job record   sv:{q}:job:<schedule>@<tick>
-- ARGV[1]  schedule name
-- ARGV[2]  tick         epoch seconds of the tick instant
-- ARGV[3]  marker ttl   seconds the tick marker lives
-- ARGV[4]  message      the job message (JSON), as enqueue.lua takes it
-- ARGV[5]  record       the job record (JSON), as enqueue.lua stores it
-- ARGV[6]  record ttl   seconds the job record lives
-- ARGV[7]  last fire    JSON {"tick", "job_id", "fired_at", "node"} to store
--
-- Every worker of every node runs this for every due tick. Guarantees, all
-- in one script: a tick fires at most once (its marker is SET NX), never
-- after a later tick of the same schedule fired (the last fire recorded in
-- the schedules hash only moves forward), and a fired tick's job is enqueued
-- exactly like enqueue.lua does it (record SET NX, then XADD) together with
-- the marker and the last-fire record, or none of them is written.
-- Returns 1 fired, 0 already fired (or older than the last fire),
-- 2 tick taken but its job id was already known (nothing enqueued).
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last then
  local ok, record = pcall(cjson.decode, last)
  if ok and type(record) == 'table' and tonumber(record.tick)
      and tonumber(record.tick) >= tonumber(ARGV[2]) then
    return 0
  end
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[7])
if not redis.call('SET', KEYS[4], ARGV[5], 'NX', 'EX', ARGV[6]) then
  return 2
end
redis.call('XADD', KEYS[3], '*', 'm', ARGV[4])
return 1
