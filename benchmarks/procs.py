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
from typing import Any

import psutil

# SIGTERM -> SIGKILL. The measurement is over when a group is stopped: a clean
# exit is polite, not needed (some peers take 3-5 s to wind down, every run).
STOP_TIMEOUT = 1.0
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Memory:
    """One process's memory (bytes). RSS counts every page it maps, shared or not;
    USS only the pages no other process maps (what it really adds: freed if it
    exits); PSS shares each page among the processes that map it (PSS summed
    over a tree is the tree's real footprint)."""

    name: str
    rss: int
    uss: int
    pss: int

    def as_mb(self) -> dict[str, Any]:
        return {"name": self.name, "rss_mb": round(self.rss / MB, 1),
                "uss_mb": round(self.uss / MB, 1), "pss_mb": round(self.pss / MB, 1)}


@dataclass(slots=True)
class TreeSample:
    cpu: float  # seconds, user + system, of the live tree plus its reaped descendants
    rss: dict[int, int]  # pid -> bytes
    memory: dict[int, Memory] = field(default_factory=dict)  # pid -> USS/PSS (full samples)


@dataclass
class WorkerGroup:
    """The root processes of one system's workers, and what was seen of their trees."""

    argvs: list[list[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    roots: list[subprocess.Popen[bytes]] = field(default_factory=list)
    peak_rss: dict[int, int] = field(default_factory=dict)
    peak_uss: dict[int, int] = field(default_factory=dict)  # pid -> bytes (full samples)
    peak_pss: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # pid -> title (full samples)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create time
    stop_seconds: float = 0.0  # how long stop() took (harness time, not measured time)

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

    def sample(self, full: bool = False) -> TreeSample:
        """CPU and RSS of the tree; with `full`, USS and PSS too (reads smaps: ~1 ms a
        process, so not at every sample)."""
        result = TreeSample(0.0, {})
        for proc in self.processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info().rss
                    detail = _memory(proc) if full else None
            except psutil.Error:
                continue
            # children_*: descendants already reaped (e.g. RQ's work horses).
            result.cpu += times.user + times.system + times.children_user + times.children_system
            result.rss[proc.pid] = memory
            self.seen.setdefault(proc.pid, proc.create_time())
            self.peak_rss[proc.pid] = max(memory, self.peak_rss.get(proc.pid, 0))
            if detail is not None:
                result.memory[proc.pid] = detail
                self.names[proc.pid] = detail.name
                self.peak_uss[proc.pid] = max(detail.uss, self.peak_uss.get(proc.pid, 0))
                self.peak_pss[proc.pid] = max(detail.pss, self.peak_pss.get(proc.pid, 0))
        return result

    def peaks(self) -> list[dict[str, Any]]:
        """Per process (that had a full sample): its peak RSS, USS and PSS in MB."""
        return [{"name": self.names[pid], "rss_mb": round(self.peak_rss.get(pid, 0) / MB, 1),
                 "uss_mb": round(self.peak_uss[pid] / MB, 1),
                 "pss_mb": round(self.peak_pss.get(pid, 0) / MB, 1)}
                for pid in sorted(self.peak_uss)]

    def dead_roots(self) -> list[int]:
        return [root.returncode for root in self.roots if root.poll() is not None]

    def stop(self) -> None:
        """SIGTERM every root, wait, then SIGKILL whatever is left of every tree."""
        began = time.monotonic()
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
        self.stop_seconds = time.monotonic() - began


def _memory(proc: psutil.Process) -> Memory:
    info = proc.memory_full_info()
    try:
        name = " ".join(proc.cmdline())[:80]  # the process title where the system sets one
    except psutil.Error:
        name = ""
    return Memory(name, info.rss, info.uss, info.pss)


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
