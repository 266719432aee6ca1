"""Fakes at the OS boundary for the master's unit tests."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from supervisor.config import Config
from supervisor.fork.status import ChildPhase, ChildSnapshot
from supervisor.master.arbiter import Master
from supervisor.master.health import DEAD, Probe
from supervisor.master.process import ExitInfo


@dataclass
class FakeStatus:
    """A status block the test writes directly, in fake-clock time."""

    heartbeat: float = 0.0
    phase: ChildPhase = ChildPhase.BOOTING
    booted: bool = False
    job_started: float = 0.0
    job_deadline: float = 0.0
    jobs_done: int = 0
    closed: bool = False
    slots: int = 1

    def read(self) -> ChildSnapshot:
        return ChildSnapshot(
            heartbeat=self.heartbeat, phase=self.phase, booted=self.booted,
            job_started=self.job_started, job_deadline=self.job_deadline,
            jobs_done=self.jobs_done, jobs_failed=0, job_id="job-1" if self.job_started else "",
            task="tests.slow" if self.job_started else "",
        )

    def close(self) -> None:
        self.closed = True


class FakeOps:
    """Records spawns and signals; the test decides who has exited."""

    def __init__(self) -> None:
        self.next_pid = 1000
        self.targets: dict[int, Callable[[], object]] = {}
        self.exited: dict[int, ExitInfo] = {}
        self.signals: list[tuple[int, int]] = []
        self.reaped: set[int] = set()

    def spawn(self, target: Callable[[], object]) -> int:
        self.next_pid += 1
        self.targets[self.next_pid] = target
        return self.next_pid

    def wait(self, pid: int) -> ExitInfo | None:
        info = self.exited.get(pid)
        if info is not None:
            self.reaped.add(pid)
        return info

    def kill(self, pid: int, sig: int) -> bool:
        self.signals.append((pid, sig))
        return pid not in self.exited

    def sent(self, sig: int) -> list[int]:
        return [pid for pid, s in self.signals if s == sig]

    def exit(self, pid: int, code: int | None = 0, sig: int | None = None) -> None:
        self.exited[pid] = ExitInfo(code=None, signal=sig) if sig else ExitInfo(code, None)


@dataclass
class FakeNotifier:
    messages: list[str] = field(default_factory=list)

    def _add(self, *lines: str) -> bool:
        self.messages.extend(lines)
        return True

    def ready(self, status: str | None = None) -> bool:
        return self._add("READY=1")

    def reloading(self, status: str | None = None) -> bool:
        return self._add("RELOADING=1")

    def stopping(self, status: str | None = None) -> bool:
        return self._add("STOPPING=1")

    def watchdog(self) -> bool:
        return self._add("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self._add("STATUS=" + text)

    def close(self) -> None:
        pass

    def states(self) -> list[str]:
        return [m for m in self.messages if not m.startswith("STATUS=")]


class Harness:
    """A Master wired to fakes, driven by a fake clock."""

    def __init__(self, config: Config | None = None, *, load: Callable[[], Config] | None = None,
                 watchdog: float | None = 0.0) -> None:
        self.config = config or Config(workers=2, tasks=("tests.fake",), graceful_timeout=10.0,
                                       heartbeat_timeout=5.0)
        self.ops = FakeOps()
        self.notifier = FakeNotifier()
        self.rss: dict[int, int] = {}
        self.now = 100.0
        self.master = Master(
            self.config, load=load, target=lambda *a, **k: None, ops=self.ops,
            probe=self.probe, notifier=self.notifier,  # type: ignore[arg-type]
            new_status=FakeStatus, watchdog=watchdog,
        )

    def probe(self, pid: int) -> Probe:
        if pid in self.ops.exited:
            return DEAD
        return Probe(alive=True, rss=self.rss.get(pid, 10 * 1024 * 1024))

    def step(self, advance: float = 0.0) -> None:
        self.now += advance
        self.master.step(self.now)

    def signal(self, sig: signal.Signals) -> None:
        self.master.dispatch([sig], self.now)
        self.master.step(self.now)

    def status(self, pid: int) -> FakeStatus:
        status = self.master.children[pid].status
        assert isinstance(status, FakeStatus)
        return status

    def pids(self, generation: int | None = None, serving: bool = True) -> list[int]:
        return sorted(
            pid for pid, child in self.master.children.items()
            if (generation is None or child.generation == generation)
            and (not serving or not child.retiring)
        )

    def slots(self) -> dict[int, int]:
        return {child.slot: pid for pid, child in self.master.children.items()
                if not child.retiring}

    def boot(self, *pids: int) -> None:
        for pid in pids or tuple(self.master.children):
            status = self.status(pid)
            status.booted = True
            status.phase = ChildPhase.IDLE
            status.heartbeat = self.now

    def beat_all(self) -> None:
        for child in self.master.children.values():
            status = child.status
            assert isinstance(status, FakeStatus)
            status.heartbeat = self.now
