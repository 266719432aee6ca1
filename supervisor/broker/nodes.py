"""Nodes in Redis: heartbeats, published node states, queue throughput.

Written by workers (worker/chores.py, worker/loop.py), read by other nodes'
workers (liveness) and by `supervisor status`:

- Heartbeat: `sv:{q}:node:<node>` for each queue q the worker serves, and
  `sv:node:<node>` (read by `status`), refreshed by every worker of the node
  with a TTL of `--heartbeat-timeout`: one pipelined round trip per shard
  per beat (one in all on a single server). While a node's key of queue q
  exists no other node reclaims its entries of q, once it expired they do;
  the claim script checks it on q's shard (claim_dead.lua), so a shard that
  is down stalls the recovery of its own queues only.
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
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster

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


def beat(client: Any, node: str, timeout: float, queues: Sequence[str] = ()) -> None:
    """Refresh the node's heartbeats (global and one per queue): alive for `timeout`
    seconds more. On a cluster each shard is beaten on its own: one that does not
    answer keeps the others from nothing (its error is raised once they are done)."""
    ttl = int(timeout * 1000)
    names = [keys.node(node), *(keys.queue_node(queue, node) for queue in queues)]
    failed: BaseException | None = None
    for group in _by_shard(client, names):
        try:
            _beat_keys(client, group, ttl)
        except (redis.exceptions.RedisError, OSError) as exc:
            failed = failed or exc
    if failed is not None:
        raise failed


def _beat_keys(client: Any, names: list[str], ttl: int) -> None:
    # PEXPIRE first: it is allowed when Redis is out of memory (noeviction
    # refuses SET), so a node that merely cannot write stays alive and keeps
    # its jobs; SET only makes the keys that are missing (a second round trip
    # only then: at the first beat, or after an outage longer than the TTL).
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.pexpire(name, ttl)
    missing = [name for name, kept in zip(names, pipe.execute(), strict=True) if not kept]
    if missing:
        # "per_queue": this node beats per queue too (see live_nodes).
        value = json.dumps({"host": socket.gethostname(), "at": time.time(),
                            "per_queue": True})
        pipe = client.pipeline(transaction=False)
        for name in missing:
            pipe.set(name, value, px=ttl)
        pipe.execute()


def _by_shard(client: Any, names: list[str]) -> list[list[str]]:
    """`names` grouped by the cluster node serving their slots (all one group elsewhere)."""
    if not isinstance(client, RedisCluster):
        return [names]
    groups: dict[str, list[str]] = {}
    for name in names:
        try:
            owner = client.nodes_manager.get_node_from_slot(client.keyslot(name)).name
        except redis.exceptions.RedisClusterException:  # a slot nobody serves: alone
            owner = f"slot {client.keyslot(name)}"
        groups.setdefault(owner, []).append(name)
    return list(groups.values())


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


def live_nodes(client: Any, names: set[str], queue: str | None = None) -> set[str]:
    """Which of these node names still have a heartbeat: with `queue`, the one on the
    queue's shard (one round trip there); without, the global one.

    A node whose queue heartbeat is missing is asked once more by its global
    key: nodes of versions before the per-queue heartbeats beat only that one
    (a rolling upgrade must not take their jobs); a node whose global key says
    it beats per queue (`per_queue`) is dead for this queue all the same (it
    no longer serves it). Should that key's shard not answer, the queue's
    shard's verdict stands (the shard holding the entries).
    """
    ordered = sorted(names)
    if queue is None:
        return _existing(client, ordered, [keys.node(name) for name in ordered])
    alive = _existing(client, ordered, [keys.queue_node(queue, name) for name in ordered])
    others = [name for name in ordered if name not in alive]
    if others:
        try:
            pipe = client.pipeline(transaction=False)
            for name in others:
                pipe.get(keys.node(name))
            alive |= {name for name, value in zip(others, pipe.execute(), strict=True)
                      if value is not None and not _beats_per_queue(value)}
        except (redis.exceptions.RedisError, OSError):
            pass
    return alive


def _beats_per_queue(value: str) -> bool:
    try:
        found = json.loads(value)
    except ValueError:
        return False
    return isinstance(found, dict) and bool(found.get("per_queue"))


def _existing(client: Any, names: list[str], heartbeats: list[str]) -> set[str]:
    pipe = client.pipeline(transaction=False)
    for key in heartbeats:
        pipe.exists(key)
    return {name for name, alive in zip(names, pipe.execute(), strict=True) if alive}


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


def add_progress(client: Any, nodes: list[dict[str, Any]], queues: list[str]) -> None:
    """Give each running job of the node states its latest progress (`progress`), read
    from the queues' progress keys: one pipelined round trip for the running hashes,
    one for the progress of the jobs found there."""
    if not queues:
        return
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.hkeys(keys.running(queue))
    held = [(queue, str(job_id)) for queue, ids in zip(queues, pipe.execute(), strict=True)
            for job_id in ids]
    if not held:
        return
    pipe = client.pipeline(transaction=False)
    for queue, job_id in held:
        pipe.get(keys.progress(queue, job_id))
    found: dict[str, Any] = {}
    for (_, job_id), raw in zip(held, pipe.execute(), strict=True):
        if raw:
            try:
                found[job_id] = json.loads(raw)
            except ValueError:
                continue
    if not found:
        return
    for node in nodes:
        for worker in node.get("workers") or []:
            for job in [worker, *(worker.get("jobs") or [])]:
                if isinstance(job, dict) and job.get("job_id") in found:
                    job["progress"] = found[job["job_id"]]


def cluster_status(client: Any, now: float | None = None) -> dict[str, Any]:
    """The `supervisor status --json` document (schema documented in the operations docs)."""
    now = time.time() if now is None else now
    nodes = read_nodes(client, now)
    queues = read_queues(client, now)
    add_progress(client, nodes, [row["queue"] for row in queues])
    return {"schema": SCHEMA, "time": round(now, 3), "nodes": nodes, "queues": queues}
