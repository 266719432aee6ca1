"""Worker process trees: start, measure (CPU, RSS) with psutil, and always stop.

Each root is started in its own session so the whole tree can be killed by
process group, whatever the system forks below it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

STOP_TIMEOUT = 5.0  # the measurement is over: no need to wait long for a clean exit


@dataclass(slots=True)
class TreeSample:
    cpu: float  # seconds, user + system, of the live tree plus its reaped descendants
    rss: dict[int, int]  # pid -> bytes


@dataclass
class WorkerGroup:
    """The root processes of one system's workers, and what was seen of their trees."""

    argvs: list[list[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    roots: list[subprocess.Popen[bytes]] = field(default_factory=list)
    peak_rss: dict[int, int] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create time

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            for argv in self.argvs:
                self.roots.append(subprocess.Popen(
                    argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True))

    def processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for root in self.roots:
            try:
                proc = psutil.Process(root.pid)
                found.append(proc)
                found.extend(proc.children(recursive=True))
            except psutil.Error:
                continue
        return found

    def sample(self) -> TreeSample:
        cpu = 0.0
        rss: dict[int, int] = {}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info().rss
            except psutil.Error:
                continue
            # children_*: descendants already reaped (e.g. RQ's work horses).
            cpu += times.user + times.system + times.children_user + times.children_system
            rss[proc.pid] = memory
            self.seen.setdefault(proc.pid, proc.create_time())
            self.peak_rss[proc.pid] = max(memory, self.peak_rss.get(proc.pid, 0))
        return TreeSample(cpu, rss)

    def dead_roots(self) -> list[int]:
        return [root.returncode for root in self.roots if root.poll() is not None]

    def stop(self) -> None:
        """SIGTERM every root, wait, then SIGKILL whatever is left of every tree."""
        for root in self.roots:
            if root.poll() is None:
                _signal_group(root.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for root in self.roots:
            with suppress(subprocess.TimeoutExpired):
                root.wait(timeout=max(0.1, deadline - time.monotonic()))
        for root in self.roots:
            _signal_group(root.pid, signal.SIGKILL)
            if root.poll() is None:
                root.wait(timeout=5)
        for pid, created in self.seen.items():  # a descendant that left its group
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
            except psutil.Error:
                continue


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextmanager
def running(group: WorkerGroup) -> Iterator[WorkerGroup]:
    """Start the group; stop it on the way out, error or not."""
    try:
        group.start()
        yield group
    finally:
        group.stop()
