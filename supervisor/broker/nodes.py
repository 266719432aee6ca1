"""Node states and queue throughput in Redis: written by workers, read by `supervisor status`.

- Node state: the master's snapshot (nodestate.py) copied to
  `sv:nodestate:<node>` with a TTL by one worker of the node every
  PUBLISH_EVERY seconds, from a thread of the worker (like the node heartbeat),
  so a node whose workers all run long jobs still publishes; a SET NX guard
  picks one worker per interval (any will do, so a dead one never stops the
  publishing). The TTL outlives the node's heartbeat key (`sv:node:<node>`): a
  node whose heartbeat is gone but whose state remains is shown as dead until
  the state expires.
- Throughput: each worker counts settled jobs per queue locally and adds them,
  once a second, to a per-queue, per-second bucket (`sv:{q}:done:<second>`,
  short TTL); jobs per second over the last minute is the sum of the last 60
  buckets / 60. One pipeline a second per worker, nothing per job.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from typing import Any

from supervisor.broker import keys
from supervisor.broker.inspect import QueueStats, known_queues, queue_stats
from supervisor.nodestate import NodeStateBuffer

log = logging.getLogger("supervisor.worker")

PUBLISH_EVERY = 2.0  # seconds between publications of a node's state
RATE_FLUSH_EVERY = 1.0  # seconds between flushes of a worker's job counts
RATE_WINDOW = 60  # seconds behind "jobs per second"
RATE_TTL = RATE_WINDOW * 2  # a bucket's lifetime
PRUNE_AFTER = 3600.0  # forget a node name not published for this long
SCHEMA = 1  # version of the `status --json` document


def state_ttl(heartbeat_timeout: float) -> int:
    """How long a published state lives: well past the heartbeat, so a dead node shows."""
    return math.ceil(3 * heartbeat_timeout + PUBLISH_EVERY)


class NodeStatePublisher:
    """Copies the master's snapshot to Redis from a thread of a worker.

    A thread, not the worker loop, so a worker busy with a long job keeps its
    node visible. Workers do not fork, so a thread is safe there (as for
    recovery.NodeHeartbeat); it has its own connection.
    """

    def __init__(self, url: str, node: str, buffer: NodeStateBuffer, queues: list[str],
                 heartbeat_timeout: float, owner: str, metrics: Any = None) -> None:
        self.url = url
        self.client: Any = None
        self.node = node
        self.buffer = buffer
        self.queues = queues
        self.ttl = state_ttl(heartbeat_timeout)
        self.owner = owner
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        wait = random.uniform(0.0, 0.2)  # the first one soon: `status` shows a new node at once
        while not self._stop.wait(wait):
            wait = PUBLISH_EVERY * random.uniform(0.9, 1.1)
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep publishing through outages
                log.debug("node state not published: %s", exc)

    def tick(self) -> bool:
        """Publish if this worker wins the guard for this interval; True if it published."""
        if self.client is None:
            from supervisor.broker.connection import connect

            self.client = connect(self.url, socket_timeout=5.0)
        guard_ms = int(PUBLISH_EVERY * 1000 * 0.9)
        if not self.client.set(keys.nodestate_guard(self.node), self.owner, nx=True,
                               px=guard_ms):
            return False
        self.publish()
        return True

    def publish(self) -> bool:
        payload = self.buffer.read()
        if payload is None:
            return False
        try:
            json.loads(payload)  # a torn copy (never expected) is skipped, not published
        except ValueError:
            return False
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(keys.nodestate(self.node), payload, ex=self.ttl)
        pipe.zadd(keys.NODESTATES, {self.node: now})
        # The writers forget names not published for long; `status` only reads.
        pipe.zremrangebyscore(keys.NODESTATES, "-inf", now - PRUNE_AFTER)
        pipe.execute()
        if self.metrics is not None and getattr(self.metrics, "enabled", False):
            self.metrics.queue_depths(queue_stats(self.client, queue) for queue in self.queues)
        return True


class RateCounter:
    """Jobs settled per queue, counted locally, flushed to per-second buckets."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.next_flush = 0.0

    def add(self, queue: str, count: int = 1) -> None:
        self.counts[queue] = self.counts.get(queue, 0) + count

    def tick(self, client: Any, now: float, wall: float | None = None) -> None:
        if now >= self.next_flush and self.counts:
            self.next_flush = now + RATE_FLUSH_EVERY
            self.flush(client, wall)

    def flush(self, client: Any, wall: float | None = None) -> None:
        if not self.counts:
            return
        counts, self.counts = self.counts, {}
        second = int(time.time() if wall is None else wall)
        pipe = client.pipeline(transaction=False)
        for queue, count in counts.items():
            bucket = keys.done_bucket(queue, second)
            pipe.incrby(bucket, count)
            pipe.expire(bucket, RATE_TTL)
        try:
            pipe.execute()
        except Exception:
            # Put them back: the next flush carries them (counts, not exact seconds).
            for queue, count in counts.items():
                self.counts[queue] = self.counts.get(queue, 0) + count
            raise


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
