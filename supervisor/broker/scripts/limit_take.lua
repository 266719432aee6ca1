-- limit_take.lua: admit the fetched jobs of limited tasks, or send them to wait in
-- Redis (never in a worker) until their limit lets them start.
--
-- KEYS[1]  stream      sv:{q}:stream (each entry has one field, 'm': the job message)
-- KEYS[2]  delayed     sv:{q}:delayed (a job over its rate waits here for its turn)
-- KEYS[3]  held        sv:{q}:limits:held (hash job id -> limit name: slots held)
-- KEYS[4]  count       sv:{q}:limits:count (hash limit name -> slots held)
-- KEYS[5]  waiting     sv:{q}:limits:waiting (sorted set, scores 0, ordered by member
--                      "<limit>\n<9 - level>\n<ms, 15 digits>\n<message>": per limit,
--                      the highest priority level first, then arrival order)
-- KEYS[6]  rates       sv:{q}:limits:rates (hash limit name -> next free turn, ms)
-- KEYS[7]  reserved    sv:{q}:limits:reserved (hash job id -> the turn it waits for)
-- KEYS[8]  waits       sv:{q}:limits:waits (hash "rate:<limit>" / "concurrency:<limit>"
--                      -> jobs waiting now)
-- ARGV[1]  group       ARGV[2] consumer that must own the entries
-- ARGV[3]  now, epoch ms (the worker's; used only if the server's TIME cannot be read)
-- ARGV[4]  lowest entry id of the batch   ARGV[5] highest entry id of the batch
-- then 10 values per job:
--   entry id, job id,
--   concurrency limit name ('' none), its most slots,
--   rate limit name ('' none), its count, its period (ms), its burst (turns that
--   may be taken at once, >= 1),
--   the message to wait with for a slot, the message to wait with for a turn
--   (the worker's: its history notes the wait, for the job's timeline)
--
-- Rate: a GCRA. Each start takes the limit's next turn (its theoretical arrival
-- time, TAT); a job may start now if TAT - (burst - 1) * interval <= now, else
-- it is given the turn TAT - (burst - 1) * interval, in the delayed set (score:
-- that turn), and the turn is counted now (reserved): so in any window of W ms
-- at most W / interval + burst turns are given out, the waiting jobs come back
-- one turn apart (no herd, no polling), in the order they were fetched, and a
-- job that comes back for its reserved turn starts without taking another.
-- Turns come late when a worker is slow to promote or fetch them (a loaded
-- machine), and late turns would start together: so a job whose turn has come
-- also passes a window check, at most count + burst starts in the last period
-- (counted in 20 slices of the period, in the rates hash under "w:<limit>";
-- the slices cover at most 1.05 periods, so the check is never looser than one
-- period). A job over it keeps its turn and waits for the next slice. Together:
-- in any window of one period, at most count + burst jobs start.
-- Concurrency: a job starts if its limit holds fewer slots than its most, and
-- then holds one (held + count) until settle.lua or handback.lua frees it in
-- the step that ends or hands back the job (limit_release.lua), which also
-- wakes a waiter (the highest level's oldest) onto the stream of its own level;
-- else it waits in the waiting set (its level read from the message it waits
-- with, as promote.lua reads it). A job already
-- holding its slot (read again after a lost reply) keeps it, counted once.
-- The concurrency check comes first and has no side effect when the limit is
-- full, so a job waiting for a slot keeps its reserved turn, if any.
-- Only entries pending for this consumer are touched. A waiting job's entry is
-- acknowledged and deleted in the step that puts it in the delayed or waiting
-- set: it is in Redis exactly once and holds no worker.
-- Returns triples of: entry id, 'rate' or 'concurrency', due ms (0 for a slot),
-- for the jobs sent to wait; the others are admitted.
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], ARGV[5], 100000, ARGV[2])
for _, entry in ipairs(pending) do
  owned[entry[1]] = true
end
-- The server's clock, not the worker's: every node counts turns on one clock, so
-- a node whose clock is off cannot start jobs early (ARGV[3] only if TIME fails).
local ok, clock = pcall(redis.call, 'TIME')
local now = ok and (tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
  or tonumber(ARGV[3])
local out, gone = {}, {}
local function count_wait(field, by)
  if redis.call('HINCRBY', KEYS[8], field, by) <= 0 then
    redis.call('HDEL', KEYS[8], field)
  end
end
local SLICES = 20
-- The window of a rate limit: {last slice, counts of slices last-20 .. last}.
local function window_counts(field, slice)
  local raw = redis.call('HGET', KEYS[6], field)
  local counts, last = {}, nil
  if raw then
    for n in string.gmatch(raw, '%d+') do
      if last == nil then last = tonumber(n) else counts[#counts + 1] = tonumber(n) end
    end
  end
  local out = {}
  for j = 0, SLICES do
    local old = last and (slice - SLICES + j) - (last - SLICES) + 1
    out[j + 1] = (old and old >= 1 and old <= SLICES + 1 and counts[old]) or 0
  end
  return out
end
-- Whether one more start fits the window now (and if so, count it).
local function window_takes(name, now, period, most)
  local width = period / SLICES
  local slice = math.floor(now / width)
  local field = 'w:' .. name
  local counts = window_counts(field, slice)
  local sum = 0
  for j = 1, SLICES + 1 do sum = sum + counts[j] end
  if sum >= most then
    return false, string.format('%.0f', math.ceil((slice + 1) * width))
  end
  counts[SLICES + 1] = counts[SLICES + 1] + 1
  redis.call('HSET', KEYS[6], field, slice .. ' ' .. table.concat(counts, ' '))
  return true, nil
end
for b = 6, #ARGV, 10 do
  local id, job = ARGV[b], ARGV[b + 1]
  local slot, most = ARGV[b + 2], tonumber(ARGV[b + 3])
  local rate = ARGV[b + 4]
  if owned[id] and not (slot ~= '' and redis.call('HEXISTS', KEYS[3], job) == 1) then
    local wait = nil
    if slot ~= '' and tonumber(redis.call('HGET', KEYS[4], slot) or '0') >= most then
      local message = ARGV[b + 8]
      local level = tonumber(string.match(message, '^{"v":1,"pr":(%d)[,}]') or 0)
      redis.call('ZADD', KEYS[5], 0, slot .. '\n' .. (9 - level) .. '\n'
                 .. string.format('%015d', now) .. '\n' .. message)
      count_wait('concurrency:' .. slot, 1)
      wait = {id, 'concurrency', 0}
    elseif rate ~= '' then
      local count, period, burst = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6]),
                                   tonumber(ARGV[b + 7])
      local reserved = redis.call('HEXISTS', KEYS[7], job) == 1
      local due = nil
      if not reserved then
        local interval = period / count
        local tat = math.max(tonumber(redis.call('HGET', KEYS[6], rate) or '0'), now)
        local turn = tat - (burst - 1) * interval
        redis.call('HSET', KEYS[6], rate, string.format('%.3f', tat + interval))
        if turn > now then
          due = string.format('%.0f', math.ceil(turn))
        end
      end
      if due == nil then  -- its turn has come: the window decides
        local _, later = window_takes(rate, now, period, count + burst)
        due = later
      end
      if due then
        if not reserved then
          count_wait('rate:' .. rate, 1)
        end
        redis.call('HSET', KEYS[7], job, due)
        redis.call('ZADD', KEYS[2], due, ARGV[b + 9])
        wait = {id, 'rate', due}
      elseif reserved then
        redis.call('HDEL', KEYS[7], job)
        count_wait('rate:' .. rate, -1)  -- back for its reserved turn, and it starts
      end
    end
    if wait then
      gone[#gone + 1] = id
      for _, value in ipairs(wait) do
        out[#out + 1] = value
      end
    elseif slot ~= '' then
      redis.call('HSET', KEYS[3], job, slot)
      redis.call('HINCRBY', KEYS[4], slot, 1)
    end
  end
end
if #gone > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(gone))
  redis.call('XDEL', KEYS[1], unpack(gone))
end
return out
