-- limit_release.lua: a shared part (pasted into settle.lua and handback.lua by
-- `--! include limit_release`): free the concurrency slots of jobs that stopped
-- running, and wake the waiter first in line for each freed slot.
--
-- release_slots(at, jobs): the caller declares 15 keys from KEYS[at] on:
--   KEYS[at]      held     sv:{q}:limits:held (hash job id -> limit name)
--   KEYS[at+1]    count    sv:{q}:limits:count (hash limit name -> slots held)
--   KEYS[at+2]    waiting  sv:{q}:limits:waiting (sorted set, scores 0, ordered by member
--                          "<limit>\n<9 - level>\n<ms, 15 digits>\n<message>")
--   KEYS[at+3]    waits    sv:{q}:limits:waits (hash "concurrency:<limit>" -> jobs waiting)
--   KEYS[at+4]    levels   sv:{q}:levels (set of the levels above 0 in use)
--   KEYS[at+5..at+14] the stream of each priority level 0..9: sv:{q}:stream,
--                 sv:{q}:stream:p1 .. :p9 (each entry has one field, 'm': the job
--                 message), where a woken job goes: a new entry on its own level, any
--                 worker takes it
--   jobs     the ids of the jobs that stopped running (settled, or handed back)
-- Guarantees (the caller's step is atomic): a slot is freed exactly once, in
-- the step that ends or hands back its job, and for each freed slot one waiter
-- of its limit goes back to the stream of its own priority level (read from its
-- message, as promote.lua does; listed in the levels set in the same step), so a
-- job waiting for a slot never waits for one that is free, and a woken job is
-- neither stuck behind a lower level's backlog nor ahead of its own level's.
-- The waiter woken is the highest priority first (the inverted level sorts
-- first), then the oldest. A member without the level (written by a release
-- before it, "<limit>\n<ms>\n<message>") is still woken, onto its message's level.
local function release_slots(at, jobs)
  local held, count, waiting, waits = KEYS[at], KEYS[at + 1], KEYS[at + 2], KEYS[at + 3]
  if #jobs == 0 or redis.call('HLEN', held) == 0 then
    return
  end
  local names = redis.call('HMGET', held, unpack(jobs))
  for i = 1, #jobs do
    local name = names[i]
    if name then
      redis.call('HDEL', held, jobs[i])
      if redis.call('HINCRBY', count, name, -1) <= 0 then
        redis.call('HDEL', count, name)
      end
      local first = redis.call('ZRANGEBYLEX', waiting, '[' .. name .. '\n',
                               '[' .. name .. '\n\255', 'LIMIT', 0, 1)
      if first[1] then
        local message = string.match(first[1], '^[^\n]*\n%d\n%d+\n(.*)$')
          or string.match(first[1], '^[^\n]*\n%d+\n(.*)$')
        redis.call('ZREM', waiting, first[1])
        if message then
          local level = tonumber(string.match(message, '^{"v":1,"pr":(%d)[,}]') or 0)
          if level > 0 then
            redis.call('SADD', KEYS[at + 4], level)
          end
          redis.call('XADD', KEYS[at + 5 + level], '*', 'm', message)
        end
        if redis.call('HINCRBY', waits, 'concurrency:' .. name, -1) <= 0 then
          redis.call('HDEL', waits, 'concurrency:' .. name)
        end
      end
    end
  end
end
