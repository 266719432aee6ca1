"""Every Redis key name, and the one field of a stream entry, in one place.

All keys of one queue share the hash tag `{queue}`, so each Lua script
touches a single Redis Cluster slot. Only the registry of queue names is
global.
"""

from __future__ import annotations

DEFAULT_NAMESPACE = "sv"
PREFIX = DEFAULT_NAMESPACE  # the process's namespace (--namespace): see use_namespace
GROUP = "workers"  # the one consumer group per queue stream
QUEUES = f"{PREFIX}:queues"  # set of every queue name ever enqueued to
# The one field of every entry of a queue stream (the job message) and of a
# dead-letter stream (the dead letter). The Lua scripts write it as the
# literal 'm', each saying so in its header.
MESSAGE_FIELD = "m"


def use_namespace(namespace: str) -> None:
    """Prefix every key of this process with `namespace` (config.namespace, default 'sv').

    One namespace per process: what a worker, a producer or a CLI command
    reads and writes all comes from one configuration. Set when a Broker is
    made from a configuration (Broker.for_config) and by the CLI readers.
    """
    global PREFIX, QUEUES, NODESTATES, SCHEDULE_DEFS
    PREFIX = namespace
    # Every global key below, named again (a key missed here is shared by all namespaces:
    # tests/unit/test_keys.py checks that none keeps the default prefix).
    QUEUES = f"{PREFIX}:queues"
    NODESTATES = f"{PREFIX}:nodestates"
    SCHEDULE_DEFS = f"{PREFIX}:scheduledefs"


def stream(queue: str) -> str:
    return f"{PREFIX}:{{{queue}}}:stream"


def level_stream(queue: str, level: int) -> str:
    """The stream of one priority level of a queue: level 0 is the queue's own stream
    (a queue that never used a priority has only that one), levels 1-9 sv:{q}:stream:pN
    (same hash tag, same consumer group; see broker/levels.py)."""
    return f"{PREFIX}:{{{queue}}}:stream" if not level else f"{PREFIX}:{{{queue}}}:stream:p{level}"


def levels(queue: str) -> str:
    """Set of the priority levels above 0 the queue's jobs have used ('1'..'9'): which
    level streams a worker reads (written before the first job of a level is added)."""
    return f"{PREFIX}:{{{queue}}}:levels"


def delayed(queue: str) -> str:
    """Sorted set of job messages scored by due time (epoch ms)."""
    return f"{PREFIX}:{{{queue}}}:delayed"


def dead(queue: str) -> str:
    """Dead-letter stream of the queue (capped)."""
    return f"{PREFIX}:{{{queue}}}:dead"


def job_prefix(queue: str) -> str:
    return f"{PREFIX}:{{{queue}}}:job:"


def job(queue: str, job_id: str) -> str:
    """The job record (JSON string): state, attempts, result or error; expires after the TTL."""
    return job_prefix(queue) + job_id


def running(queue: str) -> str:
    """Hash job id -> "worker started-at" while a worker holds the job."""
    return f"{PREFIX}:{{{queue}}}:running"


def cancels(queue: str) -> str:
    """Hash job id -> its cancel JSON {by, at, reason}, for the queue's jobs asked to be
    cancelled that a worker may still meet: queued, delayed or running (settling a job
    drops it)."""
    return f"{PREFIX}:{{{queue}}}:cancels"


def paused(queue: str) -> str:
    """Exists while the queue is paused (JSON: who paused it and when)."""
    return f"{PREFIX}:{{{queue}}}:paused"


def progress(queue: str, job_id: str) -> str:
    """The latest progress a running job reported (JSON {value, meta, at}; TTL)."""
    return f"{PREFIX}:{{{queue}}}:progress:{job_id}"


def schedules(queue: str) -> str:
    """Hash schedule name -> JSON of its last fire: tick, job id, fired_at, node."""
    return f"{PREFIX}:{{{queue}}}:schedules"


def schedule_tick(queue: str, name: str, tick: int) -> str:
    """Marker of one fired tick of a schedule (SET NX with a TTL): fired once."""
    return f"{PREFIX}:{{{queue}}}:tick:{name}:{tick}"


def node(name: str) -> str:
    """A node's heartbeat: exists while some worker of the node is alive (TTL). Read by
    `status` (and by recovery for nodes of versions that beat only this key)."""
    return f"{PREFIX}:node:{name}"


def queue_node(queue: str, name: str) -> str:
    """A node's heartbeat on the shard of one of its queues (TTL): exists while a worker
    of the node serving `queue` is alive. Recovery of the queue's entries checks it in
    the claim script itself (claim_dead.lua), on the shard that holds them."""
    return f"{PREFIX}:{{{queue}}}:node:{name}"


# --- observability (status, rates) ------------------------------------------

NODESTATES = f"{PREFIX}:nodestates"  # sorted set: node name -> last publish (epoch s)


def nodestate(name: str) -> str:
    """A node's published state (JSON written by its master, SET by a worker; TTL)."""
    return f"{PREFIX}:nodestate:{name}"


def nodestate_guard(name: str) -> str:
    """SET NX marker: one worker of the node publishes per interval."""
    return f"{PREFIX}:nodestate:{name}:guard"


def done_bucket(queue: str, second: int) -> str:
    """Jobs of the queue settled during one epoch second (INCRBY, short TTL)."""
    return f"{PREFIX}:{{{queue}}}:done:{second}"


# --- the dashboard's browse index (broker/recent.py) -------------------------

RECENT_STATES = ("succeeded", "failed", "retrying", "cancelled")  # indexed by settle.lua
# (cancel.lua indexes a job it cancels before it starts)


def recent(queue: str, state: str) -> str:
    """Sorted set: ids of the queue's jobs that last reached `state`, scored by when
    (epoch ms); trimmed to the newest recent.RECENT_MAX by settle.lua."""
    return f"{PREFIX}:{{{queue}}}:recent:{state}"


# --- schedules published by workers (broker/schedules.py) ---------------------

SCHEDULE_DEFS = f"{PREFIX}:scheduledefs"  # hash: schedule name -> definition JSON


# --- flow control (broker/limits.py; README "Rate limits, concurrency limits and unique
# jobs"): fixed keys per queue, so every script declares them and a cluster keeps a
# queue's limits in its slot.


def unique(queue: str, digest: str) -> str:
    """The unique lock of equal jobs: the id of the job holding it (TTL: unique_for, else
    the result TTL)."""
    return f"{PREFIX}:{{{queue}}}:unique:{digest}"


def limit_held(queue: str) -> str:
    """Hash job id -> limit name, for the jobs holding a concurrency slot."""
    return f"{PREFIX}:{{{queue}}}:limits:held"


def limit_count(queue: str) -> str:
    """Hash limit name -> concurrency slots held."""
    return f"{PREFIX}:{{{queue}}}:limits:count"


def limit_waiting(queue: str) -> str:
    """Sorted set (all scores 0, ordered by member): "<limit>\\n<9 - level>\\n<ms>\\n<message>"
    of the jobs waiting for a concurrency slot: per limit, the highest priority level
    first, then arrival order (limit_take.lua, limit_release.lua)."""
    return f"{PREFIX}:{{{queue}}}:limits:waiting"


def limit_rates(queue: str) -> str:
    """Hash limit name -> the rate limit's next free turn (GCRA theoretical arrival, ms)."""
    return f"{PREFIX}:{{{queue}}}:limits:rates"


def limit_reserved(queue: str) -> str:
    """Hash job id -> the turn (ms) a rate-limited job waits for in the delayed set: its
    start is already counted, so it is not counted again when it comes back."""
    return f"{PREFIX}:{{{queue}}}:limits:reserved"


def limit_waits(queue: str) -> str:
    """Hash "rate:<limit>" / "concurrency:<limit>" -> jobs waiting for that limit now."""
    return f"{PREFIX}:{{{queue}}}:limits:waits"


def limit_keys(queue: str) -> tuple[str, str, str, str, str, str]:
    """The six limit keys of a queue, in the order the scripts declare them."""
    return (limit_held(queue), limit_count(queue), limit_waiting(queue), limit_rates(queue),
            limit_reserved(queue), limit_waits(queue))

# --- workflows (broker/workflow.py, core/canvas.py) ---------------------------


def chord(queue: str, chord_id: str) -> str:
    """Hash of a chord, in its home queue's slot: members left, failure policy, the
    callback's message and record, and each member's result ('r<index>'); expires with
    the records."""
    return f"{PREFIX}:{{{queue}}}:chord:{chord_id}"


def forward(queue: str) -> str:
    """List of workflow operations for other queues' slots, written by a script of this
    queue (settle.lua) and moved on by a worker of the queue (broker/workflow.py)."""
    return f"{PREFIX}:{{{queue}}}:forward"


def forward_claim(queue: str, digest: str) -> str:
    """A worker's claim on one forward of the queue (by the payload's digest): the one
    worker that applies it, while it does (broker/workflow.py)."""
    return f"{PREFIX}:{{{queue}}}:forward:claim:{digest}"


def forward_done(tag: str, digest: str) -> str:
    """The mark that one forward (by its payload's digest) was applied, in its target
    slot (`tag`: the hash tag of the keys it writes); broker/workflow.py."""
    return f"{PREFIX}:{{{tag}}}:forward:done:{digest}"


def forward_failed(queue: str) -> str:
    """Forwards that could not be applied (logged as errors), set aside for an operator."""
    return f"{PREFIX}:{{{queue}}}:forward:failed"


def staged(queue: str, group_id: str, level: int = 0) -> str:
    """List of a workflow's member messages written but not yet runnable (a big group is
    staged in chunks, then made runnable at once by one commit; see workflow.lua). One
    list per priority level, so each commits into its level's stream without reading the
    messages; level 0's name is the one it always had."""
    base = f"{PREFIX}:{{{queue}}}:staged:{group_id}"
    return f"{base}:p{level}" if level else base


def staged_delayed(queue: str, group_id: str) -> str:
    """List of a workflow's first jobs with a countdown of their own, written but not yet
    scheduled: each item "<due ms>|<message>", committed into the delayed set."""
    return f"{PREFIX}:{{{queue}}}:staged:{group_id}:d"


def workflow(queue: str, root: str) -> str:
    """A workflow's tree (JSON, written by its producer; expires with the records): every
    member's id, task and queue, for `supervisor job` and the dashboard."""
    return f"{PREFIX}:{{{queue}}}:workflow:{root}"


def chords(queue: str) -> str:
    """Sorted set of the chords open in the queue (chord id -> when its hash expires, epoch
    ms): added when a chord is made, removed when its last member ends (status counts it)."""
    return f"{PREFIX}:{{{queue}}}:chords"


def workflow_group(queue: str, group_id: str) -> str:
    """The root of the workflow holding group `group_id` (a group inside it: a chord's
    header, a chain's group), beside its tree: so `supervisor job` takes any group's id."""
    return f"{PREFIX}:{{{queue}}}:workflow:{group_id}:root"


WORKFLOW_STATES = ("running", "succeeded", "failed")  # the sets of keys.workflows


def workflow_ends(queue: str, root: str) -> str:
    """Hash of a workflow's count of ends still to come (`left`: the jobs whose end ends a
    branch of it; `x`: when its tree expires, epoch ms; `failed`; `e<job id>`: each end
    counted once), beside its tree; expires with it."""
    return f"{PREFIX}:{{{queue}}}:workflow:{root}:ends"


def workflows(queue: str, state: str) -> str:
    """Sorted set of the workflows whose tree lives in the queue (that of their first job)
    in one of WORKFLOW_STATES (root -> when the tree expires, epoch ms): added to `running`
    with the tree, moved to `succeeded` or `failed` by the settle of its last end; expired
    entries are trimmed at each add (status counts it)."""
    return f"{PREFIX}:{{{queue}}}:workflows:{state}"
