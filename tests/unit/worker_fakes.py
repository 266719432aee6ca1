"""Fakes at the worker's seams (worker/seams.py) and a fake clock, for the loop's unit tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.broker.streams import Claimed, Delivery, Settlement
from supervisor.config import Config
from supervisor.core.outcome import Outcome
from supervisor.fork.context import ChildContext
from supervisor.fork.status import ChildStatus
from supervisor.worker.loop import Worker


@dataclass
class FakeClock:
    """Both clocks advance only when told to (or when the worker sleeps)."""

    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_800_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeBroker:
    """Hands out the batches a test queued; records what the worker wrote."""

    def __init__(self) -> None:
        self.batches: deque[list[Delivery]] = deque()
        self.errors: deque[BaseException] = deque()  # raised by the next fetches, in turn
        self.promote_errors: deque[BaseException] = deque()  # by the next promotes
        self.fetches: list[tuple[int, bool]] = []  # (count, own_pending) of each fetch
        self.settled: list[Settlement] = []
        self.handed_back: list[Delivery] = []
        self.done: dict[str, int] = {}

    def ensure_groups(self, queues: list[str]) -> None:
        pass

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False,
              plan: Sequence[tuple[str, int]] | None = None) -> list[Delivery]:
        self.fetches.append((count, own_pending))
        if self.errors:
            raise self.errors.popleft()
        return self.batches.popleft()[:count] if self.batches else []

    def own_pending(self, consumer: str, queues: Sequence[str], skip: set[tuple[str, str]],
                    count: int) -> list[Delivery]:
        return []

    cancels_seen: set[str] = set()  # noqa: RUF012 (never written: no cancels here)

    def mark_taken(self, taken: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]:
        return {}

    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return set()

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int:
        self.settled.extend(settlements)
        return len(settlements)

    def hand_back(self, consumer: str, items: Sequence[tuple[Delivery, str, str]]) -> int:
        self.handed_back.extend(delivery for delivery, _, _ in items)
        return len(items)

    def promote(self, queues: list[str], now_ms: int, batch: int) -> int:
        if self.promote_errors:
            raise self.promote_errors.popleft()
        return 0

    def forward(self, queues: list[str]) -> int:
        return 0

    def chord_results(self, queue: str, chord_id: str, members: int) -> list[Any]:
        raise LookupError("no chords in the fake")

    def consumers(self, queue: str) -> list[dict[str, Any]]:
        return []

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str, batch: int = 500,
                   *, node: str | None = None) -> list[Claimed]:
        return []

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]:
        return names

    def add_done(self, counts: dict[str, int], second: int) -> None:
        for queue, count in counts.items():
            self.done[queue] = self.done.get(queue, 0) + count


class FakeRunner:
    """'Runs' a delivery by advancing the clock by its duration (default 1 ms)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.durations: dict[str, float] = {}  # entry id -> seconds it runs
        self.expected: dict[str, float] = {}  # entry id -> what the worker expects of it
        self.ran: list[str] = []
        self.in_task = False
        self.current_task = ""
        self.interrupted = None
        self.suspects = False
        self.suspect: set[str] = set()  # entry ids of suspects (run alone)

    def is_suspect(self, delivery: Delivery) -> bool:
        return delivery.entry_id in self.suspect

    def process(self, delivery: Delivery) -> Settlement:
        self.ran.append(delivery.entry_id)
        self.clock.advance(self.durations.get(delivery.entry_id, 0.001))
        return Settlement(delivery, f"job-{delivery.entry_id}", Outcome("{}", 60))

    cancelled: dict[tuple[str, str], str] = {}  # noqa: RUF012 (never written: no cancels here)

    def check_cancel(self) -> None:
        pass

    def decode_batch(self, deliveries: list[Delivery],
                     check: frozenset[str] | set[str] = frozenset()) -> dict[str, dict[str, str]]:
        self.suspects = any(d.entry_id in self.suspect for d in deliveries)
        return {}

    def expected_seconds(self, delivery: Delivery) -> float:
        return self.expected.get(delivery.entry_id, 0.0)

    def check_deadline(self) -> None:
        pass

    def abandon(self) -> None:
        pass


@dataclass
class FakeChores:
    calls: list[str] = field(default_factory=list)

    def beat(self) -> None:
        self.calls.append("beat")

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


class Draw:
    """A random source whose every draw is `value` (the share's jitter, the pauses)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def random(self) -> float:
        return self.value

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.value


def deliveries(count: int, queue: str = "default", start: int = 1) -> list[Delivery]:
    return [Delivery(queue, f"{n}-0", "{}") for n in range(start, start + count)]


class WorkerHarness:
    """A Worker wired to the fakes. `child=True` makes it a master's child (it recycles)."""

    def __init__(self, config: Config | None = None, *, child: bool = False,
                 draw: float = 0.0) -> None:
        self.config = config or Config(queues=("default",), node_name="unit", prefetch=64)
        self.clock = FakeClock()
        self.broker = FakeBroker()
        self.runner = FakeRunner(self.clock)
        self.chores = FakeChores()
        context = ChildContext(self.config, 1, 1, ChildStatus()) if child else None
        self.worker = Worker(self.config, context=context, broker=self.broker,
                             runner=self.runner, clock=self.clock, chores=self.chores,
                             rng=Draw(draw))  # type: ignore[arg-type]

    def term(self) -> None:
        """What SIGTERM's handler does."""
        self.worker._on_term(15, None)
