"""Recovery by liveness: jobs held by dead consumers go back to work.

A consumer's name says where it lives: `node/pid/start-time`. A worker can
tell for certain whether a consumer of its own node is alive (is there a
process with that pid *and* that start time?), so a dead child's jobs are
recovered within a sweep interval of its death. A consumer of another node
is dead when that node's heartbeat key has expired. Never by guessing from
idle time: a long job of a live worker is never taken away.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from supervisor.broker import keys
from supervisor.core.consumer import ConsumerName

log = logging.getLogger("supervisor.recovery")


def consumer_for_process(node: str, pid: int | None = None) -> ConsumerName:
    """The consumer name of a process of this node (its start time guards against pid reuse)."""
    pid = pid or os.getpid()
    return ConsumerName(node, pid, f"{psutil.Process(pid).create_time():.2f}")


def process_alive(name: ConsumerName) -> bool:
    """True while the very process behind `name` runs (pid reuse is caught by start time)."""
    try:
        process = psutil.Process(name.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return f"{process.create_time():.2f}" == name.started
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def dead_local_consumers(
    consumers: list[dict[str, object]], node: str,
    alive: Callable[[ConsumerName], bool] = process_alive,
) -> list[str]:
    """Names of this node's consumers whose process is gone (from XINFO CONSUMERS)."""
    dead: list[str] = []
    for consumer in consumers:
        raw = str(consumer.get("name", ""))
        name = ConsumerName.parse(raw)
        if name is None or name.node != node:
            continue
        if not alive(name):
            dead.append(raw)
    return dead


class NodeHeartbeat:
    """Keeps this node's heartbeat key alive from a thread of its own.

    A thread, not the worker loop, so that a long job never lets the key
    lapse (a live node's jobs must never be reclaimed). Workers do not fork,
    so a thread is safe here. Each worker of a node runs one; any of them
    keeps the node alive. If the node loses Redis (partition) the key
    expires after `timeout` and other nodes reclaim its jobs.
    """

    def __init__(self, url: str, node: str, timeout: float) -> None:
        self.node = node
        self.timeout = timeout
        self.url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-heartbeat", daemon=True)
        self._client: Any = None

    def beat(self) -> None:
        """One refresh (also called once before the first fetch)."""
        if self._client is None:
            from supervisor.broker.connection import connect

            self._client = connect(self.url, socket_timeout=max(1.0, self.timeout / 3))
        value = json.dumps({"host": socket.gethostname(), "at": time.time()})
        self._client.set(keys.node(self.node), value, px=int(self.timeout * 1000))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = max(0.2, min(1.0, self.timeout / 4))
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - keep beating through outages
                log.debug("node heartbeat failed: %s", exc)


def dead_consumers(
    consumers: list[dict[str, object]], node: str, live_nodes: Callable[[set[str]], set[str]],
    alive: Callable[[ConsumerName], bool] = process_alive,
) -> list[str]:
    """Consumers whose holder is gone: local ones by process liveness, others by node heartbeat."""
    dead = dead_local_consumers(consumers, node, alive)
    remote: dict[str, list[str]] = {}
    for consumer in consumers:
        raw = str(consumer.get("name", ""))
        name = ConsumerName.parse(raw)
        if name is not None and name.node != node:
            remote.setdefault(name.node, []).append(raw)
    if remote:
        living = live_nodes(set(remote))
        for other, names in remote.items():
            if other not in living:
                dead.extend(names)
    return dead
