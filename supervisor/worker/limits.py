"""The worker's side of rate and concurrency limits: screen each fetched batch.

Between the fetch and the start of a batch, the jobs of limited tasks go
through limit_take.lua (broker/limits.py): each is admitted (it may start,
holding its concurrency slot) or sent to wait in Redis, its stream entry
acknowledged in the same step, so a waiting job never holds a worker. A
worker whose registry has no limited task skips all of it (one check per
batch): an unused limit costs nothing.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from supervisor.api.registry import has_limits, lookup
from supervisor.broker.limits import Gated, Waited
from supervisor.broker.streams import Delivery
from supervisor.core import record
from supervisor.core.job import Job, decode
from supervisor.core.limits import WAIT_CONCURRENCY, WAIT_RATE, Limits, limit_name
from supervisor.errors import InvalidMessage, UnknownTask
from supervisor.worker.metrics import NullMetrics

log = logging.getLogger("supervisor.worker")


class Admitting(Protocol):
    """What the screen needs of the broker (streams.Broker has it)."""

    def admit_limited(self, consumer: str, by_queue: dict[str, list[Gated]],
                      now_ms: int) -> dict[str, list[Waited]]: ...


class LimitScreen:
    """Sends the fetched jobs of limited tasks through the gate; keeps the admitted ones."""

    def __init__(self, consumer: str, metrics: NullMetrics,
                 wall: Callable[[], float]) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.wall = wall
        self.dues: list[int] = []  # heap of the turns (epoch ms) this worker handed out

    def screen(self, broker: Any, deliveries: list[Delivery]) -> list[Delivery]:
        """The deliveries that may start now (in order); the others now wait in Redis."""
        if not has_limits():
            return deliveries
        now = self.wall()
        by_queue: dict[str, list[Gated]] = {}
        tasks: dict[tuple[str, str], str] = {}
        for delivery in deliveries:
            gated = self._gated(delivery, now)
            if gated is not None:
                by_queue.setdefault(delivery.queue, []).append(gated[0])
                tasks[delivery.queue, delivery.entry_id] = gated[1]
        if not by_queue:
            return deliveries
        waited = broker.admit_limited(self.consumer, by_queue, int(now * 1000))
        if not waited:
            return deliveries
        gone: set[tuple[str, str]] = set()
        for queue, jobs in waited.items():
            for job in jobs:
                gone.add((queue, job.entry_id))
                self.metrics.limited(tasks[queue, job.entry_id], queue, job.kind)
                if job.due_ms:
                    heapq.heappush(self.dues, job.due_ms)
        log.debug("worker %s: %d jobs wait for their limits", self.consumer, len(gone))
        return [d for d in deliveries if (d.queue, d.entry_id) not in gone]

    @property
    def next_due_ms(self) -> int:
        """The next turn this worker handed out (0: none): its blocking read wakes then."""
        return self.dues[0] if self.dues else 0

    def due_passed(self, now_ms: int) -> bool:
        """Whether a turn this worker handed out has come: promote now, not at the next
        PROMOTE_EVERY, so a job starts a few ms after its turn rather than up to a quarter
        second (late turns bunch up, and a second would see more than the limit)."""
        passed = False
        while self.dues and now_ms >= self.dues[0]:
            heapq.heappop(self.dues)
            passed = True
        return passed

    def _gated(self, delivery: Delivery, now: float) -> tuple[Gated, str] | None:
        try:
            job = decode(delivery.message)
            limits = lookup(job.task).limits
        except (InvalidMessage, UnknownTask):  # the runner deals with those
            return None
        if limits is None:
            return None
        name = self._name(job, limits)
        rate = limits.rate
        return Gated(
            delivery.entry_id, job.id,
            name if limits.concurrency is not None else "", limits.concurrency or 0,
            name if rate is not None else "", rate.count if rate else 0,
            rate.period_ms if rate else 0, rate.burst if rate else 1,
            self._waiting(delivery, job, now, WAIT_CONCURRENCY, name) if limits.concurrency
            else "",
            self._waiting(delivery, job, now, WAIT_RATE, name) if rate else "",
        ), job.task

    def _name(self, job: Job, limits: Limits) -> str:
        try:
            return limit_name(job.task, limits, job.args, job.kwargs)
        except ValueError as exc:
            log.warning("job %s: %s; it counts under the limit of %s", job.id, exc, job.task)
            return limit_name(job.task, Limits(limits.rate, limits.concurrency), (), {})

    def _waiting(self, delivery: Delivery, job: Job, now: float, kind: str, name: str) -> str:
        """The message a job waits with: its history notes the first wait of each kind in
        this attempt (for the timeline; not every turn it waits again)."""
        for entry in job.history:
            if entry.get("outcome") == record.ATTEMPT_LIMITED and entry.get("reason") == kind \
                    and entry.get("attempt") == job.attempt:
                return delivery.message
        entry = record.limit_wait_entry(job.attempt, self.consumer, now, kind, name)
        return replace(job, history=(*job.history, entry)).encode()
