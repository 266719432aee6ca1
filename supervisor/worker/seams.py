"""The worker's seams: what the loop and recovery need of their collaborators.

Each is a Protocol the real part satisfies (streams.Broker, runner.Runner,
chores.NodeChores, SystemClock); tests hand the Worker fakes of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from supervisor.broker.streams import Claimed, Delivery, Requeue, Settlement
from supervisor.core.job import Job


class ClaimingBroker(Protocol):
    """What recovery needs of the broker (streams.Broker has it)."""

    def consumers(self, queue: str) -> list[dict[str, Any]]: ...

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str, batch: int = 500,
                   *, node: str | None = None) -> list[Claimed]: ...

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]: ...


class Clock(Protocol):
    """Monotonic time for intervals and deadlines, wall time for what is shown or stored."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)
    time = staticmethod(time.time)  # last: the name shadows the module in this body


class WorkerBroker(ClaimingBroker, Protocol):
    """What the loop needs of the broker (streams.Broker has it)."""

    def ensure_groups(self, queues: list[str]) -> None: ...

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False,
              plan: Sequence[tuple[str, int]] | None = None) -> list[Delivery]: ...

    def own_pending(self, consumer: str, queues: Sequence[str], skip: set[tuple[str, str]],
                    count: int) -> list[Delivery]: ...

    cancels_seen: set[str]  # queues with cancel requests pending at the last fetch

    def mark_taken(self, taken: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]: ...

    def paused_queues(self, queues: Sequence[str]) -> set[str]: ...

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int: ...

    def hand_back(self, consumer: str, items: Sequence[Requeue]) -> int: ...

    def promote(self, queues: list[str], now_ms: int, batch: int) -> int: ...

    def forward(self, queues: list[str]) -> int: ...

    def chord_results(self, queue: str, chord_id: str, members: int) -> list[Any]: ...

    def add_done(self, counts: dict[str, int], second: int) -> None: ...


class JobRunner(Protocol):
    """What the loop needs of the runner (runner.Runner has it)."""

    in_task: bool
    current_task: str
    interrupted: tuple[Job, float] | None  # (job, started) a quick stop cut short
    suspects: bool  # the last decoded batch holds a suspect (core/orphan.py)
    cancelled: dict[tuple[str, str], str]  # taken jobs asked to cancel: (queue, id) -> JSON

    def is_suspect(self, delivery: Delivery) -> bool: ...

    def process(self, delivery: Delivery) -> Settlement: ...

    def decode_batch(self, deliveries: list[Delivery],
                     check: frozenset[str] | set[str] = frozenset(),
                     ) -> dict[str, dict[str, str]]: ...

    def expected_seconds(self, delivery: Delivery) -> float: ...

    def check_deadline(self) -> None: ...

    def check_cancel(self) -> None: ...

    def abandon(self) -> None: ...


class Chores(Protocol):
    def beat(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


Title = Callable[..., None]  # (state, task=""): the process title
