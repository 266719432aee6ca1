-- claim_dead.lua: take over every entry a dead consumer held.
--
-- KEYS[1]  stream      sv:{q}:stream (each entry has one field, 'm': the job message),
--          or a priority level's sv:{q}:stream:pN (called once per level in use)
-- KEYS[2]  heartbeat   sv:{q}:node:<node of the dead consumer>; only when that node is
--                      another node (a consumer of the caller's own node is judged by
--                      its process, whose node is alive)
-- ARGV[1]  group       ARGV[2] dead consumer   ARGV[3] claiming consumer
-- ARGV[4]  batch       most entries taken by this call
--
-- The caller has established that the consumer's process is gone (liveness,
-- never idle time: a long job of a live worker is never stolen). For a
-- consumer of another node that verdict is checked again here: while the
-- node's heartbeat on this queue's shard (KEYS[2]) exists nothing is claimed,
-- so "is the node dead?" and "take its entries" are one atomic step on the
-- shard holding them: a node that beats again after the caller's check keeps
-- its jobs. Claim and consumer removal happen in one step, so when several
-- workers notice the same death only one of them gets the entries.
-- Returns a list of {entry id, message, idle ms, delivery count} ({} when the
-- node is alive); entries whose message was already deleted are acknowledged
-- and left out.
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {}
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[2])
local out = {}
for _, p in ipairs(pending) do
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, p[1])
  local payload = nil
  if claimed[1] then
    local fields = claimed[1][2]
    for f = 1, #fields, 2 do
      if fields[f] == 'm' then payload = fields[f + 1] end
    end
  end
  if payload then
    table.insert(out, {p[1], payload, p[3], p[4]})
  else
    redis.call('XACK', KEYS[1], ARGV[1], p[1])
    redis.call('XDEL', KEYS[1], p[1])
  end
end
if #pending < tonumber(ARGV[4]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return out
