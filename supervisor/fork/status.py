"""A small shared-memory status block between the master and one child.

The master creates one block per child *before* forking it (an anonymous
shared mapping survives the fork), the child writes, the master reads. This
is how the master learns heartbeat, busy/idle, the jobs running and their
deadlines without ever talking to Redis (DESIGN: the master never blocks on
Redis).

The block is a header (heartbeat, phase, counters, jobs running) followed by
one record per job slot: one slot at --concurrency 1, K slots at K, so the
master sees every job a child runs, each with its own deadline.

Times are `time.monotonic()` values: CLOCK_MONOTONIC is system-wide on Linux,
so both processes read the same clock.

Writes are not atomic as a whole; a reader may see a half-updated block for
an instant. Every consumer tolerates that: the verdicts drawn from it repeat
every tick and act only on conditions that persist.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# Header: heartbeat, phase, booted, jobs done, jobs failed, jobs running, slots.
_HEADER = struct.Struct("=d i i Q Q i i")
# One slot: job started, its deadline, job id, task name (slot 0's name field
# also holds why a booting child waits or leaves).
_SLOT = struct.Struct("=d d 64s 256s")
_ID_LEN = 64
_TASK_LEN = 256
NOTE_LIMIT = _TASK_LEN  # longest reason note() keeps whole
_HEARTBEAT, _PHASE, _BOOTED, _DONE, _FAILED, _RUNNING, _SLOTS = range(7)


class ChildPhase(IntEnum):
    BOOTING = 0  # forked, importing task modules
    IDLE = 1  # booted, waiting for jobs
    BUSY = 2  # running a job (one at least)
    STOPPING = 3  # asked to stop: finishing up, fetching nothing more
    WAITING = 4  # imported, not booted: Redis does not serve it yet (why: in `task`)


@dataclass(frozen=True, slots=True)
class SlotSnapshot:
    """One job a child runs (started and deadline are monotonic; deadline 0: none)."""

    started: float
    deadline: float
    job_id: str
    task: str


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    heartbeat: float
    phase: ChildPhase
    booted: bool
    job_started: float  # of the oldest job running (0.0: none)
    job_deadline: float  # 0.0: the job has no timeout
    jobs_done: int
    jobs_failed: int
    job_id: str
    task: str
    # Every job running, oldest first (empty when idle); `slots` is --concurrency.
    jobs: tuple[SlotSnapshot, ...] = ()
    slots: int = 1


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "replace")


class ChildStatus:
    """The block itself. Create in the master, pass to the child across fork.

    At one slot the child writes from its main thread only. With more, jobs
    begin and end on several threads: a lock keeps the header's counters
    exact (the master never takes it; it reads).
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
        self._map = mmap.mmap(-1, _HEADER.size + _SLOT.size * self.slots)
        self._values: list[Any] = [time.monotonic(), int(ChildPhase.BOOTING), 0, 0, 0, 0,
                                   self.slots]
        self._slot0: list[Any] = [0.0, 0.0, b"", b""]
        self._lock = threading.Lock()
        self._flush()
        for index in range(1, self.slots):
            self._write_slot(index, 0.0, 0.0, b"", b"")

    def _flush(self) -> None:
        self._unwritten = False
        self._map[0:_HEADER.size] = _HEADER.pack(*self._values)
        self._write_slot(0, *self._slot0)

    def _write_slot(self, index: int, started: float, deadline: float, job_id: bytes,
                    task: bytes) -> None:
        at = _HEADER.size + index * _SLOT.size
        self._map[at:at + _SLOT.size] = _SLOT.pack(started, deadline, job_id, task)

    def read(self) -> ChildSnapshot:
        heartbeat, phase, booted, done, failed, _, slots = _HEADER.unpack(
            self._map[:_HEADER.size])
        jobs = []
        first: tuple[float, float, bytes, bytes] = (0.0, 0.0, b"", b"")
        for index in range(min(slots, self.slots)):
            at = _HEADER.size + index * _SLOT.size
            started, deadline, job_id, task = _SLOT.unpack(self._map[at:at + _SLOT.size])
            if index == 0:
                first = (started, deadline, job_id, task)
            if started > 0:
                jobs.append(SlotSnapshot(started, deadline, _text(job_id), _text(task)))
        jobs.sort(key=lambda job: job.started)
        if slots > 1:  # the summary fields name the oldest job
            oldest = jobs[0] if jobs else None
            started, deadline = (oldest.started, oldest.deadline) if oldest else (0.0, 0.0)
            job_id, task = (oldest.job_id, oldest.task) if oldest else ("", "")
        else:
            started, deadline = first[0], first[1]
            job_id, task = _text(first[2]), _text(first[3])
        return ChildSnapshot(
            heartbeat=heartbeat, phase=ChildPhase(phase), booted=bool(booted),
            job_started=started, job_deadline=deadline, jobs_done=done, jobs_failed=failed,
            job_id=job_id, task=task, jobs=tuple(jobs), slots=slots,
        )

    # --- written by the child ---------------------------------------------

    def beat(self) -> None:
        """Record that the child's main thread is alive (cheap: one 8-byte write)."""
        self._map[0:8] = struct.pack("=d", time.monotonic())

    def mark_booted(self) -> None:
        self._values[_HEARTBEAT] = time.monotonic()
        self._values[_PHASE] = int(ChildPhase.IDLE)
        self._values[_BOOTED] = 1
        self._slot0[3] = b""
        self._flush()

    def mark_waiting(self, reason: str) -> None:
        """Booting, held up by Redis: `reason` (no password in it) is shown by the master."""
        self._values[_HEARTBEAT] = time.monotonic()
        self._values[_PHASE] = int(ChildPhase.WAITING)
        self._slot0[3] = reason.encode()[:_TASK_LEN]
        self._flush()

    def note(self, reason: str) -> None:
        """Why this child leaves before booting, for its master's one log line."""
        self._slot0[3] = reason.encode()[:_TASK_LEN]
        self._flush()

    def job_begins(self, job_id: str, task: str, timeout: float | None) -> None:
        """The one job of a single-slot child begins (main thread only)."""
        now = time.monotonic()
        self._values[_HEARTBEAT] = now
        self._values[_PHASE] = int(ChildPhase.BUSY)
        self._values[_RUNNING] = 1
        self._slot0[0] = now
        self._slot0[1] = now + timeout if timeout else 0.0
        self._slot0[2] = job_id.encode()[:_ID_LEN]
        self._slot0[3] = task.encode()[:_TASK_LEN]
        self._flush()

    def job_ends(self, failed: bool, *, publish: bool = True) -> None:
        """The job ended. publish=False leaves the write to the next job_begins or publish():
        jobs of a batch run back to back, and one write per job is enough. A job
        with a deadline is written at once all the same: the master must not
        see its deadline pass while the worker builds the outcome."""
        had_deadline = self._slot0[1] != 0.0
        self._values[_HEARTBEAT] = time.monotonic()
        if self._values[_PHASE] == ChildPhase.BUSY:
            self._values[_PHASE] = int(ChildPhase.IDLE)
        self._values[_RUNNING] = 0
        self._values[_DONE] += 1
        if failed:
            self._values[_FAILED] += 1
        self._slot0[:] = [0.0, 0.0, b"", b""]
        self._unwritten = True
        if publish or had_deadline:
            self.publish()

    def slot_begins(self, index: int, job_id: str, task: str, timeout: float | None) -> None:
        """A job begins in slot `index` of a many-slot child (any thread)."""
        now = time.monotonic()
        deadline = now + timeout if timeout else 0.0
        with self._lock:
            self._values[_RUNNING] += 1
            if self._values[_PHASE] == ChildPhase.IDLE:
                self._values[_PHASE] = int(ChildPhase.BUSY)
            self._write_slot(index, now, deadline, job_id.encode()[:_ID_LEN],
                             task.encode()[:_TASK_LEN])
            self._map[0:_HEADER.size] = _HEADER.pack(*self._values)

    def slot_ends(self, index: int, failed: bool) -> None:
        """The job of slot `index` ended (any thread); written at once."""
        with self._lock:
            self._write_slot(index, 0.0, 0.0, b"", b"")
            self._values[_RUNNING] = max(0, self._values[_RUNNING] - 1)
            self._values[_DONE] += 1
            if failed:
                self._values[_FAILED] += 1
            if self._values[_RUNNING] == 0 and self._values[_PHASE] == ChildPhase.BUSY:
                self._values[_PHASE] = int(ChildPhase.IDLE)
            self._values[_HEARTBEAT] = time.monotonic()
            self._map[0:_HEADER.size] = _HEADER.pack(*self._values)

    def publish(self) -> None:
        """Write what job_ends(publish=False) left unwritten (the end of a batch)."""
        if self._unwritten:
            self._values[_HEARTBEAT] = time.monotonic()  # never older than beat() wrote
            self._flush()

    def mark_stopping(self) -> None:
        with self._lock:
            self._values[_HEARTBEAT] = time.monotonic()
            self._values[_PHASE] = int(ChildPhase.STOPPING)
            if self.slots == 1:
                self._flush()
            else:  # slot records are written by their jobs, never from _slot0
                self._map[0:_HEADER.size] = _HEADER.pack(*self._values)

    def close(self) -> None:
        self._map.close()
