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
    global PREFIX, QUEUES, NODESTATES
    PREFIX = namespace
    QUEUES = f"{PREFIX}:queues"
    NODESTATES = f"{PREFIX}:nodestates"


def stream(queue: str) -> str:
    return f"{PREFIX}:{{{queue}}}:stream"


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
    """A node's heartbeat: exists while some worker of the node is alive (TTL)."""
    return f"{PREFIX}:node:{name}"


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

RECENT_STATES = ("succeeded", "failed", "retrying")  # the states settle.lua indexes


def recent(queue: str, state: str) -> str:
    """Sorted set: ids of the queue's jobs that last reached `state`, scored by when
    (epoch ms); trimmed to the newest recent.RECENT_MAX by settle.lua."""
    return f"{PREFIX}:{{{queue}}}:recent:{state}"


# --- schedules published by workers (broker/schedules.py) ---------------------

SCHEDULE_DEFS = f"{PREFIX}:scheduledefs"  # hash: schedule name -> definition JSON
