"""What the high-availability tests measure and check, apart from the faults they cause.

- `Feed`: a producer thread that enqueues at a steady rate and records how
  long each call took (the stalls a failover causes), and the ids it got;
- `SocketWatch`: samples every socket of a node's processes, so a test can
  say no worker ever talked to a server it was not pointed at;
- `final_counts`: the accounting of a finished run from the ledger and the
  job records.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class Feed:
    """Enqueue with `submit()` `count` times, one every `every` seconds, in a thread."""

    submit: Callable[[int], str]
    count: int
    every: float
    ids: list[str] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        for index in range(self.count):
            started = time.monotonic()
            try:
                self.ids.append(self.submit(index))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                self.errors.append(exc)
                return
            self.stalls.append(time.monotonic() - started)
            next_at += self.every
            time.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the producer did not finish"

    def longest_stall(self) -> float:
        return max(self.stalls, default=0.0)


class SocketWatch:
    """Samples the remote ports of every process of a node (master and children)."""

    def __init__(self, pids: Callable[[], Iterable[int]], every: float = 0.05) -> None:
        self.pids = pids
        self.every = every
        self.ports: dict[int, int] = {}  # remote port -> samples seen
        self.samples = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for pid in list(self.pids()):
                with contextlib.suppress(psutil.Error):
                    for conn in psutil.Process(pid).net_connections(kind="tcp"):
                        if conn.raddr:
                            self.ports[conn.raddr.port] = self.ports.get(conn.raddr.port, 0) + 1
            self.samples += 1

    def __enter__(self) -> SocketWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.thread.join(5)


@dataclass(frozen=True)
class Counts:
    jobs: int
    lost: list[str]  # never ran, or no record of success
    duplicates: int  # executions beyond the first
    states: dict[str, int]

    def __str__(self) -> str:
        return (f"{self.jobs} jobs, {len(self.lost)} lost, {self.duplicates} duplicate "
                f"executions, states {self.states}")


def final_counts(ids: list[str], runs: dict[str, str], states: dict[str, str]) -> Counts:
    lost = [job_id for job_id in ids if states.get(job_id) != "succeeded"
            or int(runs.get(job_id, 0)) < 1]
    duplicates = sum(max(0, int(runs.get(job_id, 0)) - 1) for job_id in ids)
    tally: dict[str, int] = {}
    for job_id in ids:
        state = states.get(job_id, "missing")
        tally[state] = tally.get(state, 0) + 1
    return Counts(len(ids), lost, duplicates, tally)
