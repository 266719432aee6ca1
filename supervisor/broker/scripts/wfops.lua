-- wfops.lua: the workflow operations (chain, group, chord), included where a script
-- says `--! include wfops` (settle.lua, workflow.lua). Not a script of its own.
--
-- wf_apply(ops) runs a list of operations built by broker/workflow.py. Each names
-- its keys by their index in KEYS (every key is declared: Redis Cluster), all in
-- the slot of the script's queue (a stream entry it adds has one field, 'm': the job
-- message); what belongs to another slot is written to this
-- slot's forward list as {k = key names, o = operations} and a worker applies it
-- there with workflow.lua. Every operation is idempotent but one (the enqueue of a
-- job whose record is gone already: ignore_result, it ran in between), and a forward
-- runs behind its 'once' mark, so a forward applied twice (a worker killed between
-- applying it and removing it) changes nothing:
--   {'enq', record, stream, message, record JSON, ttl[, levels]}   a job: SET NX of its
--        record, then XADD; a known id (applied before) adds nothing. A job of priority
--        N > 0: stream is sv:{q}:stream:pN and `levels` the queue's levels set, where N is
--        listed in this step (as enqueue.lua does); absent (an op made before levels, or
--        level 0): the stream alone
--   {'enqd', record, delayed, message, record JSON, ttl, due}   a job whose step has a
--        countdown: SET NX of its record, then ZADD to the delayed set at `due` (epoch
--        ms); promote.lua moves it to its level's stream when due
--   {'rec', record, record JSON, ttl}                      a record alone, SET NX
--   {'fwd', forward list, payload JSON}                    RPUSH, for another slot
--   {'chord', hash, members, policy, cb message, cb record, ttl, cb names, open set}
--        a chord's state, made once (nothing if the hash exists), and its id in the
--        queue's set of open chords (scored by when it expires, ms); cb names: the
--        callback's record and level stream (and its queue's levels set above level 0),
--        for an 'm' whose callback is of another slot
--   {'m', hash, index, value, failed, x, y, failed record, open set, chord id, lost[,
--        levels]}
--        count member `index`
--        once (HSETNX of its result 'r<index>'); a failure under policy 'fail'
--        fails the callback (its record, with the cause, SET NX) once; the last
--        member enqueues the callback unless the chord failed. x, y: the callback's
--        record and its queue's stream when it is of this slot, else x = 0 and y
--        this slot's forward list; lost: 0, or the 'end' (or its 'fwd') of the workflow
--        branches that go with the callback, applied when this failure fails the chord;
--        levels: the levels set when y is the callback's level stream above level 0
--   {'stage', record, list, message, record JSON, ttl}      SET NX of the record,
--        RPUSH of the message to a staged list (not runnable yet; one list per level)
--   {'commit', list, stream[, levels[, delayed, due]]}      XADD every staged
--        message, then DEL the list (a second commit finds it empty); a level N > 0's
--        list commits into sv:{q}:stream:pN, N listed in `levels` when anything is added
--        (levels 0: none); with `delayed` and a `due` (epoch ms) still to come, ZADD to
--        the queue's delayed set instead (a workflow's countdown / eta)
--   {'commitd', list, delayed}   ZADD each staged "<due>|<message>" of the first jobs
--        with a countdown of their own to the delayed set, then DEL the list
--   {'once', mark, ttl}   first of a forward's operations (broker/forwarding.py _apply):
--        SET NX of the mark, and nothing more is applied when it was set already
--   {'wf', tree, tree JSON, ttl, ends, count, running set, root}   a workflow's tree,
--        once (SET NX), with its count of ends (hash: left, x = when it expires, ms) and
--        its root in the queue's running set (scored by x)
--   {'end', ends, job id, count, failed, running, succeeded, failed set, root}
--        `count` branches of the workflow ended (for good if failed), counted once per
--        job id (HSETNX 'e<id>'); the one that brings `left` to zero moves the root from
--        the running set to the succeeded or failed set (failed if any branch stopped).
--        Nothing when the hash is gone (expired, or a workflow made before it existed)
-- Each add to a workflow set trims its expired entries, so it holds only the
-- workflows still on record (bounded by the result TTL).
local function wf_now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

local function wf_mark(set, root, at, now)
  redis.call('ZADD', set, at, root)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local lives = at - now + 1000
  if redis.call('PTTL', set) < lives then  -- never shortened
    redis.call('PEXPIRE', set, lives)
  end
end

local function wf_end(op)
  local ends = KEYS[op[2]]
  if redis.call('EXISTS', ends) == 0 then return end
  if redis.call('HSETNX', ends, 'e' .. op[3], 1) == 0 then return end
  if op[5] == 1 then
    redis.call('HSET', ends, 'failed', 1)
  end
  if redis.call('HINCRBY', ends, 'left', -op[4]) ~= 0 then return end
  local at = tonumber(redis.call('HGET', ends, 'x'))
  redis.call('ZREM', KEYS[op[6]], op[9])
  local done = KEYS[op[7]]
  if redis.call('HEXISTS', ends, 'failed') == 1 then done = KEYS[op[8]] end
  wf_mark(done, op[9], at, wf_now_ms())
end

-- The level of a level stream's name (sv:{q}:stream:pN), listed in the queue's levels
-- set (`levels`: a key name, or nil at level 0) in the step that adds a job to it.
local function wf_list_level(levels, stream)
  if levels then
    redis.call('SADD', levels, string.match(stream, ':p(%d)$'))
  end
end

-- The key at index `at` of KEYS, nil for 0 or absent (an op made before the levels).
local function wf_opt_key(at)
  if at and at ~= 0 then return KEYS[at] end
  return nil
end

local function wf_job(record, stream, message, written, ttl, levels)
  if redis.call('SET', record, written, 'NX', 'EX', ttl) then
    wf_list_level(levels, stream)
    redis.call('XADD', stream, '*', 'm', message)
  end
end

local function wf_member(op)
  local chord = KEYS[op[2]]
  -- Gone (expired) or not made: nothing to count into.
  if redis.call('EXISTS', chord) == 0 then return end
  if redis.call('HSETNX', chord, 'r' .. op[3], op[4]) == 0 then return end
  local state = redis.call('HMGET', chord, 'p', 'ttl', 'm', 'r', 'k')
  local ttl = tonumber(state[2])
  if op[5] == 1 and state[1] ~= 'run' and redis.call('HSETNX', chord, 'failed', op[3]) == 1 then
    if op[6] ~= 0 then
      redis.call('SET', KEYS[op[6]], op[8], 'NX', 'EX', ttl)
    else
      local names = cjson.decode(state[5])
      redis.call('RPUSH', KEYS[op[7]], cjson.encode({k = {names[1]}, o = {{'rec', 1, op[8], ttl}}}))
    end
    local lost = op[11]
    if type(lost) == 'table' then  -- the branches after the callback will never run
      if lost[1] == 'end' then
        wf_end(lost)
      else
        redis.call('RPUSH', KEYS[lost[2]], lost[3])
      end
    end
  end
  local left = redis.call('HINCRBY', chord, 'left', -1)
  redis.call('EXPIRE', chord, ttl)
  if left == 0 then
    redis.call('ZREM', KEYS[op[9]], op[10])
  end
  if left == 0 and redis.call('HEXISTS', chord, 'failed') == 0 then
    if op[6] ~= 0 then
      wf_job(KEYS[op[6]], KEYS[op[7]], state[3], state[4], ttl, wf_opt_key(op[12]))
    else
      local names = cjson.decode(state[5])
      local enq = {'enq', 1, 2, state[3], state[4], ttl}
      if #names >= 3 then enq[7] = 3 end  -- the callback's level is above 0
      redis.call('RPUSH', KEYS[op[7]], cjson.encode({k = names, o = {enq}}))
    end
  end
end

local function wf_apply(ops)
  for _, op in ipairs(ops) do
    local what = op[1]
    if what == 'once' then
      if not redis.call('SET', KEYS[op[2]], '1', 'NX', 'EX', op[3]) then return end
    elseif what == 'enq' then
      wf_job(KEYS[op[2]], KEYS[op[3]], op[4], op[5], op[6], wf_opt_key(op[7]))
    elseif what == 'enqd' then  -- a job with a countdown: its record, then the delayed set
      if redis.call('SET', KEYS[op[2]], op[5], 'NX', 'EX', op[6]) then
        redis.call('ZADD', KEYS[op[3]], op[7], op[4])
      end
    elseif what == 'rec' then
      redis.call('SET', KEYS[op[2]], op[3], 'NX', 'EX', op[4])
    elseif what == 'fwd' then
      redis.call('RPUSH', KEYS[op[2]], op[3])
    elseif what == 'm' then
      wf_member(op)
    elseif what == 'chord' then
      if redis.call('EXISTS', KEYS[op[2]]) == 0 then
        redis.call('HSET', KEYS[op[2]], 'left', op[3], 'p', op[4], 'm', op[5], 'r', op[6],
          'ttl', op[7], 'k', op[8])
        redis.call('EXPIRE', KEYS[op[2]], op[7])
        local now = redis.call('TIME')
        local expires = tonumber(now[1]) * 1000 + tonumber(op[7]) * 1000
        redis.call('ZADD', KEYS[op[9]], expires, string.match(KEYS[op[2]], ':chord:(.*)$'))
        -- Expired entries leave the set here: it never grows past the open chords.
        redis.call('ZREMRANGEBYSCORE', KEYS[op[9]], '-inf', tonumber(now[1]) * 1000)
        local lives = tonumber(op[7]) * 1000 + 1000
        if redis.call('PTTL', KEYS[op[9]]) < lives then  -- never shortened
          redis.call('PEXPIRE', KEYS[op[9]], lives)
        end
      end
    elseif what == 'stage' then
      if redis.call('SET', KEYS[op[2]], op[5], 'NX', 'EX', op[6]) then
        redis.call('RPUSH', KEYS[op[3]], op[4])
        redis.call('EXPIRE', KEYS[op[3]], op[6])
      end
    elseif what == 'end' then
      wf_end(op)
    elseif what == 'wf' then
      if redis.call('SET', KEYS[op[2]], op[3], 'NX', 'EX', op[4]) then
        local now = wf_now_ms()
        local at = now + tonumber(op[4]) * 1000
        redis.call('HSET', KEYS[op[5]], 'left', op[6], 'x', at)
        redis.call('EXPIRE', KEYS[op[5]], op[4])
        wf_mark(KEYS[op[7]], op[8], at, now)
      end
    elseif what == 'commit' then
      local staged = redis.call('LRANGE', KEYS[op[2]], 0, -1)
      if op[5] and tonumber(op[6]) > wf_now_ms() then
        -- Scheduled: promote.lua moves each to its level's stream (and lists the level)
        -- once due, as for any delayed job.
        for _, message in ipairs(staged) do
          redis.call('ZADD', KEYS[op[5]], op[6], message)
        end
      else
        if #staged > 0 then wf_list_level(wf_opt_key(op[4]), KEYS[op[3]]) end
        for _, message in ipairs(staged) do
          redis.call('XADD', KEYS[op[3]], '*', 'm', message)
        end
      end
      redis.call('DEL', KEYS[op[2]])
    elseif what == 'commitd' then  -- first jobs with a countdown of their own
      for _, item in ipairs(redis.call('LRANGE', KEYS[op[2]], 0, -1)) do
        local bar = string.find(item, '|', 1, true)
        redis.call('ZADD', KEYS[op[3]], string.sub(item, 1, bar - 1), string.sub(item, bar + 1))
      end
      redis.call('DEL', KEYS[op[2]])
    end
  end
end
