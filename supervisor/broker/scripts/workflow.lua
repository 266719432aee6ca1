-- workflow.lua: apply workflow operations in one slot, atomically.
--
-- KEYS     every key the operations name, by index (all of one slot)
-- ARGV[1]  the operations, a JSON list (see wfops.lua)
--
-- Used by producers (staging a workflow's members in chunks, then one commit
-- that opens its chords and makes every member runnable at once) and by the
-- worker that moves a queue's forward list on (broker/forwarding.py): each
-- operation is idempotent, so applying a forward twice changes nothing.
-- Returns 1.
--! include wfops
wf_apply(cjson.decode(ARGV[1]))
return 1
