"""The worker's chores between batches: paused queues, due delayed jobs, forwards,
periodic ticks, and the sweep for dead consumers of its queues.

A part of the worker loop (worker/loop.py Worker, which mixes it in and owns the
state it uses). Every chore is paced by the monotonic clock, and each is a
bounded number of round trips, so fetching is never starved by them.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from supervisor.broker.reconnect import OutageLog
from supervisor.worker.limits import LimitScreen
from supervisor.worker.metrics import FLUSH_EVERY, NullMetrics, RateCounter
from supervisor.worker.recovery import Recovery
from supervisor.worker.scheduler import Scheduler
from supervisor.worker.seams import Clock, WorkerBroker

if TYPE_CHECKING:
    from supervisor.broker.streams import Settlement

log = logging.getLogger("supervisor.worker")

# How often a worker reads which queues are paused: a pause takes effect on
# every node within CONTROL_EVERY + BLOCK_MS + the batch in hand.
CONTROL_EVERY = 0.5
PROMOTE_EVERY = 0.25  # seconds between promotions of due delayed jobs
SWEEP_EVERY = 0.5  # seconds between looks for dead consumers of this node
PROMOTE_BATCH = 1000  # delayed jobs moved per script call
PROMOTE_ROUNDS = 5  # most calls per promotion turn
SCHEDULE_EVERY = 0.5  # seconds between periodic-schedule ticks


class Housekeeping:
    """What Worker does between batches (uses its state, set in Worker.__init__)."""

    broker: WorkerBroker
    clock: Clock
    rng: random.Random
    consumer: str
    queues: list[str]
    paused: set[str]
    metrics: NullMetrics
    rates: RateCounter
    limits: LimitScreen
    scheduler: Scheduler | None
    recovery: Recovery
    outage: OutageLog
    check_own_pending: bool
    next_control: float
    next_promote: float
    next_sweep: float
    next_schedule: float
    next_metrics_flush: float

    if TYPE_CHECKING:  # Worker's
        def _redis(self, call: Any) -> Any: ...

        def _waits_out(self, exc: BaseException) -> bool: ...

        def _now_ms(self) -> int: ...

        def settle(self, settlements: list[Settlement]) -> None: ...

    def housekeeping(self, now: float) -> None:
        if now >= self.next_metrics_flush:  # local counts -> multiprocess files (no Redis)
            self.next_metrics_flush = now + FLUSH_EVERY
            self.metrics.flush()
        try:
            self.rates.tick(now, self.clock.time())
            if now >= self.next_control:
                self.next_control = now + CONTROL_EVERY
                self.read_controls()
            if now >= self.next_promote or self.limits.due_passed(self._now_ms()):
                self.next_promote = now + PROMOTE_EVERY
                self.promote_due()
            if self.scheduler is not None and now >= self.next_schedule:
                self.next_schedule = now + SCHEDULE_EVERY
                self.scheduler.tick(self.clock.time())
        except Exception as exc:
            self._housekeeping_failed(exc)
        # Apart from the others: a shard away fails them (they read every queue)
        # but must not stop the recovery of the queues on the other shards.
        if now >= self.next_sweep:
            self.next_sweep = now + SWEEP_EVERY * self.rng.uniform(0.8, 1.2)
            try:
                self.sweep_dead_consumers()
            except Exception as exc:
                self._housekeeping_failed(exc)
            # Between batches nothing should be pending for us; anything
            # that is (a claim whose reply was lost) is read and run next.
            self.check_own_pending = True

    def _housekeeping_failed(self, exc: Exception) -> None:
        if not self._waits_out(exc):
            raise exc
        # A claim whose reply was lost left entries pending for us that we
        # never saw: read our own pending entries before new ones.
        self.check_own_pending = True
        self.outage.failed(exc)

    def read_controls(self) -> None:
        """Which of our queues are paused (one pipelined read per CONTROL_EVERY)."""
        paused = self.broker.paused_queues(self.queues)
        if paused != self.paused:
            log.info("worker %s: queues paused now: %s", self.consumer,
                     ", ".join(sorted(paused)) or "none")
        self.paused = paused

    def promote_due(self) -> None:
        """Move due delayed jobs to their streams, a batch per round trip.

        Keeps going while batches come back full (a burst of due jobs drains
        quickly) but stops after a bounded number so fetching is not starved.
        """
        for _ in range(PROMOTE_ROUNDS):
            moved = self.broker.promote(self.queues, self._now_ms(), PROMOTE_BATCH)
            self.metrics.promoted(moved)
            if moved < PROMOTE_BATCH:
                break
        # Workflow steps bound for other queues (a chain's next step, a chord's
        # count or callback) move on at the same pace: broker/workflow.py.
        self.broker.forward(self.queues)

    def sweep_dead_consumers(self) -> None:
        """Recover the jobs of dead consumers of our queues (recovery.py decides)."""
        settle, requeue = self.recovery.sweep(self.queues)
        if settle:
            self.settle(settle)
        if requeue:
            self._redis(lambda: self.broker.hand_back(self.consumer, requeue))
        if self.recovery.unreachable is not None:  # a shard away: ridden out by the caller
            raise self.recovery.unreachable
