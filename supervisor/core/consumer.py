"""Consumer names: `node/pid/start-time`, which say where a consumer lives.

A worker can tell for certain whether a consumer of its own node is alive
(is there a process with that pid *and* that start time?); a consumer of
another node is alive while that node's heartbeat is. The liveness checks
themselves are the worker's (worker/recovery.py); this is the name.
"""

from __future__ import annotations

from dataclasses import dataclass


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
