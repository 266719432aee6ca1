"""The master's window for operators: node-state snapshots and the /metrics endpoint.

Every second the master writes a JSON snapshot of its node into the shared
`NodeStateBuffer` (a worker copies it to Redis: the master never talks to
Redis), and each tick it serves waiting scrapes (metrics_http.py). Both are
bounded, non-blocking work inside the master's loop.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import enum
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from supervisor.errors import BOOT_REFUSALS, CHILD_EXIT_RECYCLE
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.fork.status import ChildPhase
from supervisor.master.children import Child
from supervisor.master.health import CpuMeter
from supervisor.master.metrics_http import (
    MasterCollector,
    MasterNumbers,
    MetricsServer,
    mark_child_dead,
    remove_multiproc_dir,
    render,
)
from supervisor.version import __version__

if TYPE_CHECKING:
    from supervisor.config import Config
    from supervisor.master.pool import Pool
    from supervisor.master.process import ExitInfo

SNAPSHOT_EVERY = 1.0  # seconds between node-state snapshots

# Why a child was replaced (label `reason` of supervisor_child_restarts_total).
# A child that leaves for good (stop, scale down, failed reload) is no restart.
_RESTART_BY_REASON = {
    "recycled: over memory": "memory",
    "job over its time limit": "timeout",
    "hung": "hung",
    "replaced by reload": "reload",
    "old generation": "reload",
}


def restart_reason(child: Child, info: ExitInfo, expected: bool, running: bool) -> str | None:
    """The restart reason of a reaped child, or None when nobody replaces it."""
    if not running:
        return None
    if info.code == CHILD_EXIT_RECYCLE:
        return "max_jobs"
    if child.reason in _RESTART_BY_REASON:
        return _RESTART_BY_REASON[child.reason]
    if child.retiring:  # stop, scaled down, reload failed
        return None
    if info.code in BOOT_REFUSALS:
        return "boot_failure"
    return None if expected else "crashed"


class MasterView(Protocol):
    """What the observer reads of the master (arbiter.Master), each tick."""

    @property
    def config(self) -> Config: ...

    @property
    def pool(self) -> Pool: ...

    @property
    def state(self) -> enum.Enum: ...

    @property
    def generation(self) -> int: ...

    @property
    def workers(self) -> int: ...

    @property
    def slot_restarts(self) -> Mapping[int, tuple[int, str]]: ...

    @property
    def rss(self) -> Mapping[int, int]: ...

    @property
    def restarts(self) -> Mapping[str, int]: ...

    @property
    def last_restart(self) -> str: ...

    def numbers(self) -> MasterNumbers: ...


_PHASES = {ChildPhase.BOOTING: "booting", ChildPhase.IDLE: "idle", ChildPhase.BUSY: "busy",
           ChildPhase.STOPPING: "stopping", ChildPhase.WAITING: "waiting for Redis"}


class Observer:
    """Snapshots into the shared buffer; optionally serves /metrics."""

    def __init__(self, buffer: NodeStateBuffer, *, metrics_dir: str | None = None,
                 listen: tuple[str, int] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.buffer = buffer
        self.metrics_dir = metrics_dir
        self.wall_clock = wall_clock
        # The master's own numbers as of the last tick: what a scrape reports.
        self.numbers = MasterNumbers(0, 0, 0, {})
        self.server: MetricsServer | None = None
        if listen is not None and metrics_dir is not None:
            collector = MasterCollector(lambda: self.numbers)
            self.server = MetricsServer(*listen, lambda: render(metrics_dir, collector))
        self.cpu = CpuMeter()
        self.started_at = wall_clock()
        self.next_snapshot = 0.0
        self.host = socket.gethostname()

    @classmethod
    def start(cls, bind: str, port: int, make_dir: Callable[[], str]) -> Observer:
        """The real thing: a buffer, and /metrics when `port` is set (ConfigError if taken)."""
        buffer = NodeStateBuffer()
        if not port:
            return cls(buffer)
        path = make_dir()
        try:
            return cls(buffer, metrics_dir=path, listen=(bind, port))
        except Exception:
            remove_multiproc_dir(path)
            buffer.close()
            raise

    def tick(self, master: MasterView, now: float) -> None:
        if now >= self.next_snapshot:
            self.next_snapshot = now + SNAPSHOT_EVERY
            self.buffer.write_state(self.snapshot(master, now))
        if self.server is not None:
            self.numbers = master.numbers()
            self.server.poll(now)

    def reaped(self, pid: int) -> None:
        self.cpu.forget(pid)
        if self.metrics_dir is not None:
            mark_child_dead(pid, self.metrics_dir)

    def snapshot(self, master: MasterView, now: float) -> dict[str, Any]:
        """The node state as `supervisor status` shows it (documented in docs)."""
        wall = self.wall_clock()
        workers = []
        for child in sorted(master.pool, key=lambda c: (c.slot, c.generation)):
            snap = child.status.read()
            busy = snap.phase is ChildPhase.BUSY or (
                snap.phase is ChildPhase.STOPPING and snap.job_started > 0)
            jobs = snap.jobs if busy else ()
            restarts, last = master.slot_restarts.get(child.slot, (0, ""))
            workers.append({
                "slot": child.slot, "pid": child.pid, "generation": child.generation,
                "state": "busy" if busy else _PHASES[snap.phase],
                "retiring": child.retiring or child.killed,
                "job_id": snap.job_id if busy else None,
                "task": snap.task if busy else None,
                "running_for": round(now - snap.job_started, 3) if busy else None,
                # Every job it runs (--concurrency K: up to K), oldest first.
                "concurrency": snap.slots,
                "jobs": [{"job_id": job.job_id, "task": job.task,
                          "running_for": round(now - job.started, 3)} for job in jobs],
                "uptime": round(now - child.started, 3),
                "jobs_done": snap.jobs_done, "jobs_failed": snap.jobs_failed,
                "restarts": restarts, "last_restart": last or None,
                "rss": master.rss.get(child.pid, 0),
                "cpu_percent": round(self.cpu.percent(child.pid), 1),
            })
        return {
            "node": master.config.node_name, "host": self.host, "master_pid": os.getpid(),
            "version": __version__, "state": master.state.value,
            "started_at": round(self.started_at, 3), "at": round(wall, 3),
            "uptime": round(wall - self.started_at, 3), "generation": master.generation,
            "workers_target": master.workers, "workers_live": master.pool.workers_up(),
            "jobs_done": master.pool.jobs_done(), "queues": list(master.config.queues),
            "heartbeat_timeout": master.config.heartbeat_timeout,
            "restarts": sum(master.restarts.values()), "last_restart": master.last_restart,
            "workers": workers,
        }

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.metrics_dir is not None:
            remove_multiproc_dir(self.metrics_dir)
        self.buffer.close()
