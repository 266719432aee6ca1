"""A worker's node-level chores: the node heartbeat and publishing the node state.

One thread and one connection per worker do both (they used to be two of
each). Why in every worker, and on a thread:

- The heartbeat (`sv:{q}:node:<node>` per queue served, on the queue's
  shard, and `sv:node:<node>` for `status`: broker/nodes.py) is what keeps
  other nodes from reclaiming this node's jobs, so it must keep beating while every worker of
  the node runs a long job: the worker loop is inside the task then, so the
  beat runs on a thread. It must also stop when the node is gone or cut off:
  it lives in the processes that hold the jobs, so when they die, or cannot
  reach Redis, the key expires and other nodes take the jobs over. The
  master cannot beat (it never talks to Redis), and a helper process would
  keep the node alive while its workers were dead (a hung master that
  restarts nobody), or let it expire while they run (the helper crashing).
  One beat per worker per second is cheap; any live worker keeps the node
  alive.
- The node state is the master's snapshot (fork/nodestate.py); one worker
  per interval copies it to Redis (a guard key picks it). It rides on the
  heartbeat's thread and connection: same cadence, no extra socket.

Workers do not fork, so a thread is safe here. The beat goes first in each
turn, so a slow publish never delays the heartbeat by more than itself.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.broker import nodes
from supervisor.broker.connection import connect
from supervisor.broker.inspect import queue_stats
from supervisor.config import Config
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.worker.cancels import POLL_EVERY, CancelWatch
from supervisor.worker.metrics import NullMetrics
from supervisor.worker.progress import FLUSH_EVERY, ProgressBuffer

log = logging.getLogger("supervisor.recovery")


class NodeChores:
    """The heartbeat of this worker's node and, if given its buffer, the node state."""

    def __init__(self, config: Config, owner: str, node_state: NodeStateBuffer | None,
                 metrics: NullMetrics) -> None:
        self.url = config.redis_url
        self.node = config.node_name
        self.timeout = config.heartbeat_timeout
        self.queues = list(config.queues)
        self.owner = owner  # this worker's consumer name (holds the publishing guard)
        self.node_state = node_state
        self.metrics = metrics
        self.state_ttl = nodes.state_ttl(config.heartbeat_timeout)
        self.interval = max(0.2, min(1.0, self.timeout / 4))
        self.client: Any = None
        self.watch: CancelWatch | None = None  # the worker's held jobs (set by the worker)
        self.progress: ProgressBuffer | None = None  # its jobs' progress (set by the worker)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-chores", daemon=True)

    def _client(self) -> Any:
        if self.client is None:
            self.client = connect(self.url, socket_timeout=max(1.0, self.timeout / 3))
        return self.client

    def beat(self) -> None:
        """One refresh of the heartbeat (also called once before the first fetch)."""
        nodes.beat(self._client(), self.node, self.timeout, self.queues)

    def publish_turn(self) -> bool:
        """Publish the node state if this worker wins the guard for this interval."""
        if self.node_state is None or not nodes.take_publish_turn(
                self._client(), self.node, self.owner):
            return False
        payload = self.node_state.read()
        if payload is None:
            return False
        try:
            json.loads(payload)  # a torn copy (never expected) is skipped, not published
        except ValueError:
            return False
        nodes.publish_state(self.client, self.node, payload, self.state_ttl)
        if self.metrics.enabled:
            self.metrics.queue_depths(queue_stats(self.client, queue) for queue in self.queues)
        return True

    def poll_cancels(self) -> None:
        """Read the cancel requests of the jobs the worker holds (see worker/cancels.py)."""
        if self.watch is not None:
            self.watch.poll(self._client())

    def flush_progress(self) -> None:
        """Write the jobs' progress reported since the last flush (worker/progress.py)."""
        if self.progress is not None:
            self.progress.flush(self._client())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        now = time.monotonic()
        next_beat = now + self.interval  # the worker beat once before it started us
        # The first publication soon: `status` shows a new node at once.
        next_publish = now + random.uniform(0.0, 0.2) if self.node_state else float("inf")
        next_watch = now + POLL_EVERY
        next_progress = now + FLUSH_EVERY
        while not self._stop.wait(max(0.0, min(next_beat, next_publish, next_watch,
                                               next_progress) - time.monotonic())):
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + FLUSH_EVERY
                if self.progress is not None and self.progress.pending:
                    _keep_going(self.flush_progress, "progress not written")
            if now >= next_watch:
                next_watch = now + POLL_EVERY
                if self.watch is not None and self.watch.held:
                    _keep_going(self.poll_cancels, "cancel requests not read")
            if now >= next_beat:
                next_beat = now + self.interval
                _keep_going(self.beat, "node heartbeat failed")
            if now >= next_publish:
                next_publish = now + nodes.PUBLISH_EVERY * random.uniform(0.9, 1.1)
                _keep_going(self.publish_turn, "node state not published")


def _keep_going(chore: Callable[[], object], what: str) -> None:
    try:
        chore()
    except Exception as exc:  # noqa: BLE001 - keep beating and publishing through outages
        log.debug("%s: %s", what, exc)
