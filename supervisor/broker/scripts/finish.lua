-- finish.lua: record a job's outcome and acknowledge its stream entry, atomically.
--
-- KEYS[1]  stream      sv:{q}:stream
-- KEYS[2]  job hash    sv:{q}:job:<id>
-- KEYS[3]  dead        sv:{q}:dead
-- KEYS[4]  delayed     sv:{q}:delayed
-- ARGV[1]  group       ARGV[2] entry id    ARGV[3] consumer that must own the entry
-- ARGV[4]  ttl         seconds to keep the job hash; 0: delete it (ignore_result)
-- ARGV[5]  dead letter JSON to append to the dead stream, or ''
-- ARGV[6]  dead max    approximate cap of the dead stream
-- ARGV[7]  retry       job message of the next attempt, or ''
-- ARGV[8]  retry due   epoch ms     ARGV[9] now epoch ms
-- ARGV[10..] field, value pairs for the job hash
--
-- Guarantees: the outcome (result, dead letter, next attempt) is written in
-- the same step as XACK + XDEL, so a crash can never leave a job both
-- acknowledged and without its outcome. If the entry is no longer pending
-- for this consumer (settled already by a retried call after a lost reply,
-- or taken over by another consumer) nothing is written: the call is
-- idempotent and never overwrites what another owner decided.
-- Returns 1 when settled, 0 when the entry was not ours to settle.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 or pending[1][2] ~= ARGV[3] then
  return 0
end
if tonumber(ARGV[4]) == 0 then
  redis.call('DEL', KEYS[2])
elseif #ARGV >= 10 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 10))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'm', ARGV[5])
end
if ARGV[7] ~= '' then
  if tonumber(ARGV[8]) <= tonumber(ARGV[9]) then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[7])
  else
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
