"""A small shared-memory status block between the master and one child.

The master creates one block per child *before* forking it (an anonymous
shared mapping survives the fork), the child writes, the master reads. This
is how the master learns heartbeat, busy/idle, current job and its deadline
without ever talking to Redis (DESIGN: the master never blocks on Redis).

Times are `time.monotonic()` values: CLOCK_MONOTONIC is system-wide on Linux,
so both processes read the same clock.

Writes are not atomic as a whole; a reader may see a half-updated block for
an instant. Every consumer tolerates that: the verdicts drawn from it repeat
every tick and act only on conditions that persist.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# The last field holds the task's name, or why a booting child waits or leaves.
_LAYOUT = struct.Struct("=d i i d d Q Q Q 64s 256s")
_ID_LEN = 64
_TASK_LEN = 256
NOTE_LIMIT = _TASK_LEN  # longest reason note() keeps whole


class ChildPhase(IntEnum):
    BOOTING = 0  # forked, importing task modules
    IDLE = 1  # booted, waiting for jobs
    BUSY = 2  # running a job
    STOPPING = 3  # asked to stop: finishing up, fetching nothing more
    WAITING = 4  # imported, not booted: Redis does not serve it yet (why: in `task`)


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    heartbeat: float
    phase: ChildPhase
    booted: bool
    job_started: float
    job_deadline: float  # 0.0: the job has no timeout
    jobs_done: int
    jobs_failed: int
    job_id: str
    task: str


class ChildStatus:
    """The block itself. Create in the master, pass to the child across fork."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _LAYOUT.size)  # MAP_SHARED | MAP_ANONYMOUS
        self._values: list[Any] = [
            time.monotonic(), int(ChildPhase.BOOTING), 0, 0.0, 0.0, 0, 0, 0, b"", b"",
        ]
        self._flush()

    def _flush(self) -> None:
        self._unwritten = False
        self._map.seek(0)
        self._map.write(_LAYOUT.pack(*self._values))

    def read(self) -> ChildSnapshot:
        (heartbeat, phase, booted, started, deadline, done, failed, _, job_id, task) = (
            _LAYOUT.unpack(self._map[: _LAYOUT.size])
        )
        return ChildSnapshot(
            heartbeat=heartbeat,
            phase=ChildPhase(phase),
            booted=bool(booted),
            job_started=started,
            job_deadline=deadline,
            jobs_done=done,
            jobs_failed=failed,
            job_id=job_id.rstrip(b"\0").decode("utf-8", "replace"),
            task=task.rstrip(b"\0").decode("utf-8", "replace"),
        )

    # --- written by the child ---------------------------------------------

    def beat(self) -> None:
        """Record that the child's main thread is alive (cheap: one 8-byte write)."""
        self._map[0:8] = struct.pack("=d", time.monotonic())

    def mark_booted(self) -> None:
        self._values[0] = time.monotonic()
        self._values[1] = int(ChildPhase.IDLE)
        self._values[2] = 1
        self._values[9] = b""
        self._flush()

    def mark_waiting(self, reason: str) -> None:
        """Booting, held up by Redis: `reason` (no password in it) is shown by the master."""
        self._values[0] = time.monotonic()
        self._values[1] = int(ChildPhase.WAITING)
        self._values[9] = reason.encode()[:_TASK_LEN]
        self._flush()

    def note(self, reason: str) -> None:
        """Why this child leaves before booting, for its master's one log line."""
        self._values[9] = reason.encode()[:_TASK_LEN]
        self._flush()

    def job_begins(self, job_id: str, task: str, timeout: float | None) -> None:
        now = time.monotonic()
        self._values[0] = now
        self._values[1] = int(ChildPhase.BUSY)
        self._values[3] = now
        self._values[4] = now + timeout if timeout else 0.0
        self._values[8] = job_id.encode()[:_ID_LEN]
        self._values[9] = task.encode()[:_TASK_LEN]
        self._flush()

    def job_ends(self, failed: bool, *, publish: bool = True) -> None:
        """The job ended. publish=False leaves the write to the next job_begins or publish():
        jobs of a batch run back to back, and one write per job is enough. A job
        with a deadline is written at once all the same: the master must not
        see its deadline pass while the worker builds the outcome."""
        had_deadline = self._values[4] != 0.0
        self._values[0] = time.monotonic()
        if self._values[1] == ChildPhase.BUSY:
            self._values[1] = int(ChildPhase.IDLE)
        self._values[3] = 0.0
        self._values[4] = 0.0
        self._values[5] += 1
        if failed:
            self._values[6] += 1
        self._values[8] = b""
        self._values[9] = b""
        self._unwritten = True
        if publish or had_deadline:
            self.publish()

    def publish(self) -> None:
        """Write what job_ends(publish=False) left unwritten (the end of a batch)."""
        if self._unwritten:
            self._values[0] = time.monotonic()  # never an older heartbeat than beat() wrote
            self._flush()

    def mark_stopping(self) -> None:
        self._values[0] = time.monotonic()
        self._values[1] = int(ChildPhase.STOPPING)
        self._flush()

    def close(self) -> None:
        self._map.close()
