-- settle.lua: write the outcomes of finished jobs and acknowledge them, atomically.
--
-- KEYS[1]    stream      sv:{q}:stream
-- KEYS[2]    dead        sv:{q}:dead
-- KEYS[3]    delayed     sv:{q}:delayed
-- KEYS[4]    running     sv:{q}:running (job id -> worker, while taken)
-- KEYS[5..]  job records sv:{q}:job:<id>, one per entry, in ARGV order
-- ARGV[1]  group      ARGV[2] consumer that must own the entries
-- ARGV[3]  dead max (approximate cap of the dead stream)   ARGV[4] now, epoch ms
-- ARGV[5]  lowest entry id of the batch   ARGV[6] highest entry id of the batch
-- then 7 values per entry:
--   entry id, job id,
--   record   the job record (JSON); '' deletes it (ignore_result)
--   ttl      seconds the record lives
--   dead     dead letter (JSON) to append to the dead stream, or ''
--   retry    message of the next attempt, or ''
--   due      epoch ms of the next attempt
--
-- Guarantees: each outcome (record, dead letter, next attempt) is written in
-- the same step as XACK + XDEL of its entry, so a crash can never leave a
-- job acknowledged without its outcome. Only entries still pending for this
-- consumer are settled: a retried call after a lost reply writes nothing
-- twice, and an entry another consumer took over (this worker was presumed
-- dead) is left to its new owner.
-- Returns how many entries were settled.
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], ARGV[6], 100000, ARGV[2])
for _, entry in ipairs(pending) do
  owned[entry[1]] = true
end
local acked, jobs = {}, {}
for i = 5, #KEYS do
  local b = 7 + (i - 5) * 7
  local id = ARGV[b]
  if owned[id] then
    if ARGV[b + 2] == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], ARGV[b + 2], 'EX', ARGV[b + 3])
    end
    if ARGV[b + 4] ~= '' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[b + 4])
    end
    if ARGV[b + 5] ~= '' then
      if tonumber(ARGV[b + 6]) <= tonumber(ARGV[4]) then
        redis.call('XADD', KEYS[1], '*', 'm', ARGV[b + 5])
      else
        redis.call('ZADD', KEYS[3], ARGV[b + 6], ARGV[b + 5])
      end
    end
    acked[#acked + 1] = id
    jobs[#jobs + 1] = ARGV[b + 1]
    owned[id] = nil
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
  redis.call('HDEL', KEYS[4], unpack(jobs))
end
return #acked
