"""Nodes in Redis: heartbeats, published node states, queue throughput.

Written by workers (worker/chores.py, worker/loop.py), read by other nodes'
workers (liveness) and by `supervisor status`:

- Heartbeat: `sv:node:<node>`, refreshed by every worker of the node with a
  TTL of `--heartbeat-timeout`; while it exists no other node reclaims the
  node's jobs, once it expired they do.
- Node state: the master's snapshot (fork/nodestate.py) copied to
  `sv:nodestate:<node>` with a TTL by one worker of the node every
  PUBLISH_EVERY seconds; a SET NX guard picks one worker per interval (any
  will do, so a dead one never stops the publishing). The TTL outlives the
  heartbeat: a node whose heartbeat is gone but whose state remains is shown
  as dead until the state expires.
- Throughput: each worker counts settled jobs per queue locally and adds them,
  once a second, to a per-queue, per-second bucket (`sv:{q}:done:<second>`,
  short TTL); jobs per second over the last minute is the sum of the last 60
  buckets / 60. One pipeline a second per worker, nothing per job.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Mapping
from typing import Any

from supervisor.broker import keys
from supervisor.broker.inspect import QueueStats, known_queues, queue_stats

PUBLISH_EVERY = 2.0  # seconds between publications of a node's state
RATE_WINDOW = 60  # seconds behind "jobs per second"
RATE_TTL = RATE_WINDOW * 2  # a bucket's lifetime
PRUNE_AFTER = 3600.0  # forget a node name not published for this long
SCHEMA = 1  # version of the `status --json` document


def state_ttl(heartbeat_timeout: float) -> int:
    """How long a published state lives: well past the heartbeat, so a dead node shows."""
    return math.ceil(3 * heartbeat_timeout + PUBLISH_EVERY)


# --- written by workers -------------------------------------------------------


def beat(client: Any, node: str, timeout: float) -> None:
    """Refresh the node's heartbeat: alive for `timeout` seconds more."""
    # PEXPIRE first: it is allowed when Redis is out of memory (noeviction
    # refuses SET), so a node that merely cannot write stays alive and keeps
    # its jobs; SET only makes the key when it is missing.
    ttl = int(timeout * 1000)
    if not client.pexpire(keys.node(node), ttl):
        value = json.dumps({"host": socket.gethostname(), "at": time.time()})
        client.set(keys.node(node), value, px=ttl)


def take_publish_turn(client: Any, node: str, owner: str) -> bool:
    """True if `owner` publishes the node's state this interval (a SET NX guard)."""
    guard_ms = int(PUBLISH_EVERY * 1000 * 0.9)
    return bool(client.set(keys.nodestate_guard(node), owner, nx=True, px=guard_ms))


def publish_state(client: Any, node: str, payload: bytes, ttl: int) -> None:
    """Store the node's snapshot (JSON bytes) and list the node among those with a state."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.nodestate(node), payload, ex=ttl)
    pipe.zadd(keys.NODESTATES, {node: now})
    # The writers forget names not published for long; `status` only reads.
    pipe.zremrangebyscore(keys.NODESTATES, "-inf", now - PRUNE_AFTER)
    pipe.execute()


def add_done(client: Any, counts: Mapping[str, int], second: int) -> None:
    """Add settled-job counts (per queue) to the buckets of one epoch second."""
    pipe = client.pipeline(transaction=False)
    for queue, count in counts.items():
        bucket = keys.done_bucket(queue, second)
        pipe.incrby(bucket, count)
        pipe.expire(bucket, RATE_TTL)
    pipe.execute()


# --- read by other nodes and by `supervisor status` ---------------------------


def live_nodes(client: Any, names: set[str]) -> set[str]:
    """Which of these node names still have a heartbeat."""
    ordered = sorted(names)
    pipe = client.pipeline(transaction=False)
    for name in ordered:
        pipe.exists(keys.node(name))
    return {name for name, alive in zip(ordered, pipe.execute(), strict=True) if alive}


def jobs_per_second(client: Any, queue: str, now: float) -> float:
    """Settled jobs per second over the last RATE_WINDOW whole seconds."""
    end = int(now)
    names = [keys.done_bucket(queue, second) for second in range(end - RATE_WINDOW, end)]
    return sum(int(value) for value in client.mget(names) if value) / RATE_WINDOW


def read_nodes(client: Any, now: float) -> list[dict[str, Any]]:
    """Every node with a published state: alive, stale (alive, old snapshot) or dead.

    Read-only (a viewer needs no write permission): names not published for
    PRUNE_AFTER are skipped here and removed by the publishing workers.
    """
    names = sorted(str(name) for name in client.zrangebyscore(
        keys.NODESTATES, now - PRUNE_AFTER, "+inf"))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.nodestate(name))
        pipe.exists(keys.node(name))
    replies = pipe.execute()
    nodes = []
    for index, name in enumerate(names):
        raw, beating = replies[2 * index], replies[2 * index + 1]
        if not raw:
            continue  # expired: gone
        try:
            state = json.loads(raw)
        except ValueError:
            continue
        age = max(0.0, now - float(state.get("at", 0)))
        if not beating:
            status = "dead"
        elif age > 3 * PUBLISH_EVERY + 1:
            status = "stale"  # workers beat, but the master's snapshot is not moving
        else:
            status = "alive"
        state.update(node=name, status=status, age=round(age, 3))
        nodes.append(state)
    return nodes


def read_queues(client: Any, now: float) -> list[dict[str, Any]]:
    rows = []
    for name in known_queues(client):
        stats: QueueStats = queue_stats(client, name)
        rows.append({**stats.as_dict(), "jobs_per_second": round(
            jobs_per_second(client, name, now), 3)})
    return rows


def cluster_status(client: Any, now: float | None = None) -> dict[str, Any]:
    """The `supervisor status --json` document (schema documented in the operations docs)."""
    now = time.time() if now is None else now
    return {"schema": SCHEMA, "time": round(now, 3), "nodes": read_nodes(client, now),
            "queues": read_queues(client, now)}
