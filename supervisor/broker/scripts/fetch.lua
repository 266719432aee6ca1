-- fetch.lua: read new entries of one or more queues for a consumer, highest priority
-- level first within each queue, in the queue order and amounts a worker planned
-- (core/queue_order.py), without blocking.
--
-- KEYS, 11 per queue, in the order of the queues:
--   levels      sv:{q}:levels (set of the levels above 0 the queue's jobs used)
--   then the stream of each level 0..9: sv:{q}:stream, sv:{q}:stream:p1 .. :p9
--          (each entry has one field, 'm': the job message); only those of level 0
--          and of the levels in the set are read, all are declared (Redis Cluster)
-- ARGV[1]  group       ARGV[2] consumer      ARGV[3] total: most entries read in all
-- ARGV[4]  lowest level read: 0, or 1 to read only the levels above 0 (a worker that
--          just learnt of them, having read level 0 already)
-- ARGV[5..] one quota per queue: how many of the total this queue gets first
--
-- Pass 1 reads each queue up to its quota, its levels from 9 down to 0; pass 2
-- gives what is left of the total (queues short of work) to the queues in
-- their order, the same way. A strict order is quotas {total, 0, ...}; a
-- weighted one is the round's shares. A level stream without the group (its
-- first job was just added, or Redis lost it) gets the group at id 0, so its
-- entries are delivered.
-- Guarantees: within a queue no entry of a lower level is read while one of
-- a higher level is waiting (all in one step); never more than `total`.
-- Returns: one string per queue, its levels above 0 ("9,5" or ""), then four
-- values per entry read: queue index (1-based), level, entry id, message.
local group, consumer = ARGV[1], ARGV[2]
local total = tonumber(ARGV[3])
local queues = #ARGV - 4
local lowest = tonumber(ARGV[4])
local out, order = {}, {}
local taken = 0

local function read(q, level, want)
  local stream = KEYS[(q - 1) * 11 + 2 + level]
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want,
    'STREAMS', stream, '>')
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'NOGROUP', 1, true) then
      error(reply)
    end
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want,
      'STREAMS', stream, '>')
  end
  if not reply then
    return 0
  end
  local entries = reply[1][2]
  for _, entry in ipairs(entries) do
    local fields, message = entry[2], ''
    for f = 1, #fields, 2 do
      if fields[f] == 'm' then message = fields[f + 1] end
    end
    out[#out + 1] = q
    out[#out + 1] = level
    out[#out + 1] = entry[1]
    out[#out + 1] = message
  end
  return #entries
end

-- Reads up to `want` entries of queue q, highest level first; returns how many.
local function drain(q, want)
  local got = 0
  for _, level in ipairs(order[q]) do
    if got >= want then break end
    got = got + read(q, level, want - got)
  end
  return got
end

local more = {}
for q = 1, queues do
  local levels = {}
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[(q - 1) * 11 + 1])) do
    local level = tonumber(member)
    if level and level >= 1 and level <= 9 and level == math.floor(level) then
      levels[#levels + 1] = level
    end
  end
  table.sort(levels, function(a, b) return a > b end)
  out[q] = table.concat(levels, ',')
  if lowest == 0 then
    levels[#levels + 1] = 0
  end
  order[q] = levels
end
for q = 1, queues do
  local want = math.min(tonumber(ARGV[4 + q]), total - taken)
  local got = want > 0 and drain(q, want) or 0
  taken = taken + got
  more[q] = got >= want  -- it may have more (an empty quota says nothing either)
end
for q = 1, queues do
  if taken >= total then break end
  if more[q] then
    taken = taken + drain(q, total - taken)
  end
end
return out
