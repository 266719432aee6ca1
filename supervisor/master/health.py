"""Health of one child: a psutil probe and pure verdicts on what it shows.

`probe()` is the only function here that touches the OS. Everything else is
a pure function of a `ChildSnapshot` (what the child wrote into its status
block), a `Probe` and `now`, so the master's decisions are tested with a fake
clock and hand-made snapshots.

All times are `time.monotonic()` values, the clock the child writes with.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import psutil

from supervisor.fork.status import ChildPhase, ChildSnapshot

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Probe:
    """What psutil sees of a child: alive (not a zombie) and its current RSS in bytes."""

    alive: bool
    rss: int


DEAD = Probe(alive=False, rss=0)


def probe(pid: int) -> Probe:
    """Current (not peak) RSS of `pid`; DEAD if it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return DEAD
            return Probe(alive=True, rss=process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return DEAD


@dataclass(frozen=True, slots=True)
class Limits:
    """The thresholds a verdict is drawn against (from Config)."""

    heartbeat_timeout: float
    boot_timeout: float
    max_memory_mb: int = 0  # 0: no limit

    @classmethod
    def from_config(cls, heartbeat_timeout: float, max_memory_mb: int) -> Limits:
        # Importing task code may take a while (large apps); a child that has
        # not booted gets more time than the heartbeat timeout before it is
        # called hung.
        return cls(
            heartbeat_timeout=heartbeat_timeout,
            boot_timeout=max(60.0, 3 * heartbeat_timeout),
            max_memory_mb=max_memory_mb,
        )


class Verdict(enum.Enum):
    OK = "ok"
    HUNG = "hung"  # heartbeat too old: SIGABRT, then SIGKILL
    OVERTIME = "overtime"  # job past its hard limit: SIGKILL
    OVER_MEMORY = "over memory"  # recycle after the current job
    # No verdict on the job count: a child leaves by itself after its
    # --max-jobs-per-child share, between batches (CHILD_EXIT_RECYCLE).

    @property
    def recycles(self) -> bool:
        """A graceful recycle (SIGTERM, replaced at once), not a kill."""
        return self is Verdict.OVER_MEMORY


def hard_limit_grace(timeout: float) -> float:
    """Grace past a job's own timeout before the master kills: max(2 s, 10 %)."""
    return max(2.0, 0.1 * timeout)


def is_hung(snap: ChildSnapshot, now: float, limits: Limits) -> bool:
    allowed = limits.heartbeat_timeout if snap.booted else limits.boot_timeout
    return now - snap.heartbeat > allowed


def is_overtime(snap: ChildSnapshot, now: float) -> bool:
    """The child's job ran past its timeout plus grace: its soft timeout did not work."""
    if snap.phase is not ChildPhase.BUSY and snap.phase is not ChildPhase.STOPPING:
        return False
    # Every job the child runs has its own deadline (K of them at --concurrency K):
    # one job past its hard limit is enough, the child is killed with all it holds.
    running = [(job.started, job.deadline) for job in snap.jobs] if snap.slots > 1 \
        else [(snap.job_started, snap.job_deadline)]
    for started, deadline in running:
        if deadline > 0.0 and now > deadline + hard_limit_grace(max(0.0, deadline - started)):
            return True
    return False


def overtime_job(snap: ChildSnapshot, now: float) -> tuple[str, str]:
    """(job id, task) of the job that ran past its hard limit (the oldest job if none)."""
    for job in snap.jobs:
        if job.deadline > 0.0 and \
                now > job.deadline + hard_limit_grace(max(0.0, job.deadline - job.started)):
            return job.job_id, job.task
    return snap.job_id, snap.task


def is_over_memory(snap: ChildSnapshot, health: Probe, limits: Limits) -> bool:
    """Over the RSS limit, and recycling can help: the child has run (or runs) a job.

    A child still booting, or idle without having run a job, is at its
    baseline: recycling it would only start another one just as big (a
    recycle storm when the limit is set below what the task code needs).
    """
    if limits.max_memory_mb <= 0 or health.rss <= limits.max_memory_mb * MB:
        return False
    return snap.booted and (snap.jobs_done > 0 or snap.phase is ChildPhase.BUSY)


def judge(snap: ChildSnapshot, health: Probe, now: float, limits: Limits) -> Verdict:
    """The one verdict for a live child, the most urgent first."""
    if is_hung(snap, now, limits):
        return Verdict.HUNG
    if is_overtime(snap, now):
        return Verdict.OVERTIME
    if is_over_memory(snap, health, limits):
        return Verdict.OVER_MEMORY
    return Verdict.OK


class CpuMeter:
    """CPU% of each child since the last reading (psutil keeps the previous times per object).

    For the node state only (`supervisor status`): never part of a verdict.
    """

    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}

    def percent(self, pid: int) -> float:
        """CPU% of `pid` since the previous call for it (0.0 on the first call or if gone)."""
        process = self._processes.get(pid)
        try:
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
                process.cpu_percent(None)  # primes the counter: the first reading is 0.0
                return 0.0
            return float(process.cpu_percent(None))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._processes.pop(pid, None)
            return 0.0

    def forget(self, pid: int) -> None:
        self._processes.pop(pid, None)
