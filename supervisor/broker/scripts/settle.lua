-- settle.lua: write the outcomes of finished jobs and acknowledge them, atomically.
--
-- KEYS[1]  stream      sv:{q}:stream (each entry has one field, 'm': the job message),
--          or the priority level's sv:{q}:stream:pN the entries came from (one call per
--          level): a retry due now goes back to that level
-- KEYS[2]  dead        sv:{q}:dead (each entry has one field, 'm': the dead letter)
-- KEYS[3]  delayed     sv:{q}:delayed
-- KEYS[4]  running     sv:{q}:running (job id -> worker, while taken)
-- KEYS[5..8] the browse index sv:{q}:recent:succeeded, :failed, :retrying, :cancelled
--          (sorted sets job id -> settle time ms, each trimmed to the newest
--          RECENT_MAX and expiring with its longest-lived record; broker/recent.py
--          reads them)
-- KEYS[9]  cancels     sv:{q}:cancels (hash: job id -> cancel JSON; settled jobs leave it)
-- KEYS[10..] the record sv:{q}:job:<id> of each entry, in the order of the entries
--          (declared, so Redis Cluster routes the script and follows a migration)
-- then, after the records (at L = 10 + number of entries):
-- KEYS[L..L+3] sv:{q}:limits:held, :limits:count, :limits:waiting, :limits:waits
--          (concurrency slots: see limit_release.lua)
-- KEYS[L+4] sv:{q}:levels, then KEYS[L+5..L+14] the stream of each priority level
--          0..9 (sv:{q}:stream, sv:{q}:stream:p1 .. :p9): where a job woken for a freed
--          slot goes, on its own level (limit_release.lua)
-- KEYS[L+15..] the unique lock sv:{q}:unique:<digest> of each entry with a digest,
--          in the order of those entries
-- ARGV[1]  group       ARGV[2] consumer that must own the entries
-- ARGV[3]  dead max (approximate cap of the dead stream)   ARGV[4] now, epoch ms
-- ARGV[5]  lowest entry id of the batch   ARGV[6] highest entry id of the batch
-- then 10 values per entry (separate values, not one string to match: the
-- per-job parsing was a third of the script's time):
--   entry id, job id, ttl (seconds the record lives), kind, due ms, record, extra,
--   flow, flow if cancelled, unique (the digest of the job's unique lock, '' none)
--   kind     'r' (record only), 'x' (delete the record: ignore_result),
--            'd' (record + dead letter), 'n' (record + next attempt due at <due ms>),
--            'k' (a cancelled job not run: its record becomes `cancelled` if it
--            is not already, with the cancel of the cancels hash; record unused)
--   record   the job record (JSON)
--   extra    the dead letter (JSON) or the next attempt's message, else ''
--   flow     a workflow member's operations (JSON, see wfops.lua), applied when the
--            entry is settled: its chain's next step, its chord's count and, from
--            the last member, the callback; '' for a plain job
--   flow if cancelled  the operations instead, when this script turns the entry
--            into a cancel (its failure reaches its chord); ''
-- KEYS after the records, the limit keys and the locks: the keys the flows name (by
--          index)
--
-- A job in the cancels hash (asked to be cancelled while it ran or waited) is
-- never retried nor dead-lettered: a next attempt or a dead letter (it failed,
-- or its worker was killed past the cancel grace) is dropped and it ends
-- `cancelled`; one that succeeded first keeps its result, with
-- `cancel_requested` noting the request.
-- Flow control: a settled job frees its concurrency slot (and wakes a job
-- waiting for it); a job that ends for good (any kind but 'n': succeeded,
-- failed, dead-lettered, cancelled, expired, ignore_result) deletes its unique
-- lock if the lock is still its own; a retry keeps it (the job lives on).
-- Guarantees: each outcome (record, dead letter, next attempt) is written in
-- the same step as XACK + XDEL of its entry, so a crash can never leave a
-- job acknowledged without its outcome. Only entries still pending for this
-- consumer are settled: a retried call after a lost reply writes nothing
-- twice, and an entry another consumer took over (this worker was presumed
-- dead) is left to its new owner.
-- A workflow's next step or callback is enqueued in this same step, so no
-- crash can lose or double it, and a retried call applies nothing twice.
-- Returns how many entries were settled.
--! include limit_release
--! include wfops
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], ARGV[6], 100000, ARGV[2])
for _, entry in ipairs(pending) do
  owned[entry[1]] = true
end
local now = tonumber(ARGV[4])
local acked, jobs = {}, {}
-- The browse index (KEYS[5..8]): kind 'r' succeeded (or cancelled, when the record
-- written says so: stopped by its cancel, or expired), 'd' failed, 'n' retrying,
-- 'k' cancelled (when this step made it so; cancel.lua indexed the others).
local RECENT_MAX = 1000  -- broker/recent.py RECENT_MAX
local recent = {r = KEYS[5], d = KEYS[6], n = KEYS[7], k = KEYS[8]}
local record = 10
local limits = 10 + (#ARGV - 6) / 10  -- the first key after the records
local lock = limits + 15  -- the next unique lock key (after the 15 of limit_release.lua)
local cancels = redis.call('HLEN', KEYS[9]) > 0
local adds = {}  -- index key -> {score, id, score, id, ...}: one ZADD per index and batch
local lives = {}  -- index key -> the longest record ttl added to it in this batch
for b = 7, #ARGV, 10 do
  local id, job, ttl, kind, due = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local key = KEYS[record]
  record = record + 1
  local unique = nil
  if ARGV[b + 9] ~= '' then
    unique = KEYS[lock]
    lock = lock + 1
  end
  if owned[id] then
    local asked = cancels and redis.call('HGET', KEYS[9], job)
    local flow = ARGV[b + 7]
    if asked and (kind == 'n' or kind == 'd') then
      kind = 'k'  -- asked to be cancelled: never retried nor dead-lettered, it ends cancelled
      flow = ARGV[b + 8]
    end
    if flow ~= '' then
      wf_apply(cjson.decode(flow))
    end
    local index = recent[kind]
    if kind == 'x' then
      redis.call('DEL', key)
    elseif kind == 'k' then
      local raw = redis.call('GET', key)
      index = nil
      if raw and not string.find(raw, '"state":"cancelled"', 1, true) then
        index = KEYS[8]
        -- Asked while a worker held it, then handed back (its worker stopped or
        -- died), or it failed: edited as cancel.lua does (see there why as text).
        raw = string.gsub(raw, '"state":"%a+"', '"state":"cancelled"', 1)
        raw = string.sub(raw, 1, -2) .. ',"finished_at":' .. string.format('%.3f', now / 1000)
          .. ',"cancelled":' .. (asked or '{"by":"","reason":"requested"}') .. '}'
        redis.call('SET', key, raw, 'KEEPTTL')
      end
    else
      local raw = ARGV[b + 5]
      if asked and not string.find(raw, '"state":"cancelled"', 1, true) then
        -- It succeeded before the cancel reached it: its result stands and the
        -- record notes the late request.
        raw = string.sub(raw, 1, -2) .. ',"cancel_requested":' .. asked .. '}'
      end
      redis.call('SET', key, raw, 'EX', ttl)
      if kind == 'r' and string.match(raw, '"state":"(%a+)"') == 'cancelled' then
        index = KEYS[8]
      end
    end
    if unique and kind ~= 'n' and redis.call('GET', unique) == job then
      redis.call('DEL', unique)
    end
    if kind == 'd' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[b + 6])
    elseif kind == 'n' then
      if tonumber(due) <= now then
        redis.call('XADD', KEYS[1], '*', 'm', ARGV[b + 6])
      else
        redis.call('ZADD', KEYS[3], due, ARGV[b + 6])
      end
    end
    if index then
      local list = adds[index]
      if not list then
        list = {}
        adds[index] = list
      end
      list[#list + 1] = now
      list[#list + 1] = job
      lives[index] = math.max(lives[index] or 0, tonumber(ttl))
    end
    acked[#acked + 1] = id
    jobs[#jobs + 1] = job
    owned[id] = nil
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
  redis.call('HDEL', KEYS[4], unpack(jobs))
  redis.call('HDEL', KEYS[9], unpack(jobs))
  release_slots(limits, jobs)
end
for index, list in pairs(adds) do
  for first = 1, #list, 1000 do
    redis.call('ZADD', index, unpack(list, first, math.min(first + 999, #list)))
  end
  redis.call('ZREMRANGEBYRANK', index, 0, -RECENT_MAX - 1)
  -- The index outlives none of its records by much: it expires with the
  -- longest-lived record added to it (never shortened by a later batch).
  if redis.call('TTL', index) < lives[index] then
    redis.call('EXPIRE', index, lives[index])
  end
end
return #acked
