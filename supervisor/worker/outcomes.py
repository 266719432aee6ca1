"""Writing what a worker holds back to Redis: settling finished jobs, handing back
the rest (a stop, a slow job's neighbours, a suspect run alone).

A part of the worker loop (worker/loop.py Worker, which mixes it in and owns the
state it uses). Both writes ride out outages (`_redis`); what cannot be
written is recovered later by liveness, never lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis

from supervisor.broker.streams import Delivery, Requeue, Settlement, StreamLost
from supervisor.core import record
from supervisor.core.job import Job, peek_id
from supervisor.worker.seams import Clock, JobRunner, WorkerBroker

log = logging.getLogger("supervisor.worker")

LOST_DATA = ("Redis lost its data (a restart without persistence, or FLUSHALL); "
             "the queue's stream is made again and work goes on")


class Outcomes:
    """What Worker writes back (uses its state, set in Worker.__init__)."""

    broker: WorkerBroker
    runner: JobRunner
    clock: Clock
    consumer: str

    if TYPE_CHECKING:  # Worker's
        def _redis(self, call: Any) -> Any: ...

        def _waits_out(self, exc: BaseException) -> bool: ...

        def _now_ms(self) -> int: ...

    def requeue_items(self, held: list[Delivery]) -> list[Requeue]:
        """What hand_back sends for `held`: each message as it came, but the job a quick
        stop cut short (held[0]) with that attempt in its record."""
        items: list[Requeue] = [(d, d.message, peek_id(d.message) or "") for d in held]
        cut, self.runner.interrupted = self.runner.interrupted, None
        if cut is not None and items[0][2] == cut[0].id:
            items[0] = self.interrupted_item(held[0], *cut)
        return items

    def interrupted_item(self, delivery: Delivery, job: Job, started: float) -> Requeue:
        """The hand-back of a job a quick stop cut short: its record keeps that attempt."""
        entry = record.cut_short(job.attempt, self.consumer, started, self.clock.time(),
                                 record.ATTEMPT_INTERRUPTED, "a quick stop (QUIT or INT) "
                                 "cut it short; the job went back to its queue")
        back = job.after_interruption(entry)
        return (delivery, back.encode(), job.id, record.requeued(back))

    def hand_back(self, held: list[Delivery]) -> None:
        if not held:
            return
        items = self.requeue_items(held)
        try:
            self._redis(lambda: self.broker.hand_back(self.consumer, items))
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("could not hand back %d jobs: %s", len(held), LOST_DATA)
        except Exception as exc:
            if not self._waits_out(exc):
                raise
            log.warning("could not hand back %d jobs; they will be recovered when this "
                        "worker is seen dead", len(held))

    def settle(self, settlements: list[Settlement]) -> None:
        try:
            settled = self._redis(lambda: self.broker.settle(self.consumer, settlements,
                                                             self._now_ms()))
        except StreamLost as lost:
            log.warning("worker %s: %s finished jobs' entries are gone, so are their jobs: "
                        "%s; their outcomes were not written", self.consumer, lost, LOST_DATA)
            settlements = [s for s in settlements if s.delivery.queue not in lost.lost]
            settled = lost.settled
        if settled < len(settlements):
            log.warning("%d of %d finished jobs were no longer ours to settle (taken over by "
                        "another node while this one was presumed dead); their outcome was "
                        "dropped and the new owner runs them", len(settlements) - settled,
                        len(settlements))
