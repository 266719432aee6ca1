"""What the master knows about each child it forked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from supervisor.fork.status import ChildSnapshot


class StatusBlock(Protocol):
    """The master's side of a child's status block (`ChildStatus`, or a test fake)."""

    def read(self) -> ChildSnapshot: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Child:
    """One forked child, from spawn until it is reaped."""

    pid: int
    slot: int  # 1..workers: which place in the pool it fills
    generation: int  # bumped on every reload
    status: StatusBlock
    started: float  # monotonic
    retiring: bool = False  # asked to leave; its slot is free for a replacement
    reason: str = ""  # why it was asked to leave or killed
    kill_at: float | None = None  # SIGKILL once now >= kill_at
    aborted: bool = False  # SIGABRT sent (hung)
    killed: bool = False  # SIGKILL sent

    def label(self) -> str:
        return f"worker {self.slot} [gen {self.generation}] (pid {self.pid})"

    def kill_by(self, deadline: float) -> None:
        """Make sure a SIGKILL follows no later than `deadline`."""
        self.kill_at = deadline if self.kill_at is None else min(self.kill_at, deadline)
