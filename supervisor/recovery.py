"""Recovery by liveness: jobs held by dead consumers of this node go back to work.

A consumer's name says where it lives: `node/pid/start-time`. A worker can
tell for certain whether a consumer of its own node is alive (is there a
process with that pid *and* that start time?), so a dead child's jobs are
recovered within a sweep interval of its death, never by guessing from idle
time; a long job of a live worker is never taken away.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil

log = logging.getLogger("supervisor.recovery")


@dataclass(frozen=True, slots=True)
class ConsumerName:
    node: str
    pid: int
    started: str  # process start time, seconds since the epoch, 2 decimals

    def __str__(self) -> str:
        return f"{self.node}/{self.pid}/{self.started}"

    @classmethod
    def parse(cls, text: str) -> ConsumerName | None:
        parts = text.rsplit("/", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    @classmethod
    def for_process(cls, node: str, pid: int | None = None) -> ConsumerName:
        pid = pid or os.getpid()
        return cls(node, pid, f"{psutil.Process(pid).create_time():.2f}")


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
