"""The set of children the master forked: spawn, reap, signal, kill.

Policy (when to spawn, whom to retire) lives in `master.py`; this module only
keeps the books and carries the orders out through `ProcessOps`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator

from supervisor.config import Config
from supervisor.fork.context import ChildContext, ChildTarget
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.fork.status import ChildPhase, ChildSnapshot
from supervisor.master.children import Child, StatusBlock
from supervisor.master.process import ExitInfo, ProcessOps
from supervisor.master.signals import SignalCapture

log = logging.getLogger("supervisor.master")


class Pool:
    """The live (not yet reaped) children, by pid."""

    def __init__(self, ops: ProcessOps, new_status: Callable[..., StatusBlock], *,
                 node_state: NodeStateBuffer | None = None,
                 metrics_dir: str | None = None) -> None:
        self.ops = ops
        self.new_status = new_status
        self.node_state = node_state  # handed to every child (ChildContext)
        self.metrics_dir = metrics_dir
        self.children: dict[int, Child] = {}
        self.jobs_done_before = 0  # by children already reaped
        self.capture: SignalCapture | None = None  # the master's self-pipe, closed in children
        self.close_in_child: list[Callable[[], None]] = []  # more of the master's, e.g. sockets
        self.served = False  # a worker of this pool ever booted (see ChildContext)

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.children.values()))

    def __len__(self) -> int:
        return len(self.children)

    def spawn(
        self, target: ChildTarget, config: Config, slot: int, generation: int, now: float,
    ) -> Child:
        """Fork a child running `target`; OSError if the fork fails."""
        status = self.new_status(slots=config.concurrency)  # one slot per job in flight
        # Built before the fork: all the child gets from its master.
        context = ChildContext(config, slot, generation, status,  # type: ignore[arg-type]
                               node_state=self.node_state, metrics_dir=self.metrics_dir,
                               pool_served=self.served)
        inherited = [child.status for child in self.children.values()]
        capture = self.capture
        closers = list(self.close_in_child)

        def child_entry() -> object:
            # Runs in the forked child: drop what belongs to the master.
            if capture is not None:
                capture.close_fds()
            for close in closers:
                close()
            for other in inherited:
                other.close()
            return target(context)

        try:
            pid = self.ops.spawn(child_entry)
        except OSError:
            status.close()
            raise
        child = Child(pid, slot, generation, status, started=now)
        self.children[pid] = child
        log.info("spawned %s", child.label())
        return child

    def reap(self) -> list[tuple[Child, ExitInfo, ChildSnapshot]]:
        """The children that ended since the last call, with their last status."""
        ended = []
        for pid, child in list(self.children.items()):
            info = self.ops.wait(pid)
            if info is None:
                continue
            del self.children[pid]
            snap = child.status.read()
            child.status.close()
            self.jobs_done_before += snap.jobs_done
            ended.append((child, info, snap))
        return ended

    def retire(self, child: Child, now: float, reason: str, timeout: float) -> None:
        """SIGTERM: finish the current job and leave; SIGKILL after `timeout`."""
        if child.retiring or child.killed:
            return
        child.retiring = True
        child.reason = reason
        self.ops.kill(child.pid, signal.SIGTERM)
        child.kill_by(now + timeout)

    def quit(self, child: Child, now: float, timeout: float) -> None:
        """SIGQUIT: abandon the job (it goes back to the queue) and leave now."""
        child.retiring = True
        child.reason = child.reason or "stop"
        if not child.killed:
            self.ops.kill(child.pid, signal.SIGQUIT)
            child.kill_by(now + timeout)

    def abort(self, child: Child, now: float, grace: float) -> None:
        """SIGABRT: the child's faulthandler dumps its threads; SIGKILL after `grace`."""
        child.aborted = True
        child.reason = child.reason or "hung"
        self.ops.kill(child.pid, signal.SIGABRT)
        child.kill_by(now + grace)

    def signal(self, child: Child, signum: int) -> None:
        """Pass a signal on to a child (USR1: reopen its logs)."""
        self.ops.kill(child.pid, signum)

    def murder(self, child: Child) -> None:
        child.killed = True
        self.ops.kill(child.pid, signal.SIGKILL)

    def murder_overdue(self, now: float) -> None:
        for child in self.children.values():
            if not child.killed and child.kill_at is not None and now >= child.kill_at:
                log.warning("%s did not exit in time: SIGKILL", child.label())
                self.murder(child)

    def murder_all(self, timeout: float = 5.0) -> None:
        """Last resort on the way out: SIGKILL whatever is left and reap it."""
        for child in self.children.values():
            self.murder(child)
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline:
            if not self.reap():
                time.sleep(0.01)

    def booted(self, generation: int, max_slot: int) -> int:
        """How many serving children of `generation` in slots 1..max_slot have booted."""
        return sum(
            1 for child in self.children.values()
            if child.generation == generation and not child.retiring and not child.killed
            and child.slot <= max_slot and child.status.read().booted
        )

    def waiting(self) -> str:
        """Why serving children are held up at boot by Redis ('' when none is)."""
        for child in self.children.values():
            if not child.retiring and not child.killed:
                snap = child.status.read()
                if snap.phase is ChildPhase.WAITING and not snap.booted:
                    return snap.task
        return ""

    def workers_up(self) -> int:
        return sum(
            1 for child in self.children.values()
            if not child.retiring and not child.killed and child.status.read().booted
        )

    def jobs_done(self) -> int:
        live = sum(child.status.read().jobs_done for child in self.children.values())
        return self.jobs_done_before + live
