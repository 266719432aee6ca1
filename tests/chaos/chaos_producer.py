"""A producer thread enqueueing a steady stream of chaos jobs, recording each confirmation.

Jobs are spread over the run's queues at random (chaos_tasks.QUEUES).

Every job has an id chosen here (`apply_async(job_id=...)`): enqueue is
idempotent per id, so when the producer gives up on an absent Redis
(`BrokerUnavailable`) the same id is simply tried again. A job counts as
enqueued only once `apply_async` returned.
"""

from __future__ import annotations

import random
import threading
import time

import chaos_tasks
from chaos_events import Event, EventLog

from supervisor.errors import BrokerUnavailable

SLOW_SHARE = 0.1  # jobs of 0.2-1.5 s, so kills often hit a job mid-flight
SLOWEST_MS = 1500


class SteadyProducer(threading.Thread):
    def __init__(self, log: EventLog, seed: int, rate: float, prefix: str) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.log = log
        self.rng = random.Random(seed)
        self.rate = rate
        self.prefix = prefix
        self.confirmed: dict[str, float] = {}  # job id -> when apply_async returned
        self.queue_of: dict[str, str] = {}  # job id -> its queue
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def duration_ms(self) -> int:
        if self.rng.random() < SLOW_SHARE:
            return self.rng.randint(200, SLOWEST_MS)
        return self.rng.randint(1, 8)

    def run(self) -> None:
        try:
            started = time.monotonic()
            sent = 0
            while not self.stopping.is_set():
                due = int((time.monotonic() - started) * self.rate)
                while sent < due and not self.stopping.is_set():
                    self.enqueue(f"{self.prefix}-{sent:06d}", self.duration_ms(),
                                 self.rng.choice(chaos_tasks.QUEUES))
                    sent += 1
                self.stopping.wait(0.02)
        except BaseException as exc:  # noqa: BLE001 - handed to the harness thread
            self.error = exc

    def enqueue(self, job_id: str, ms: int, queue: str) -> None:
        self.queue_of[job_id] = queue
        while True:
            try:
                chaos_tasks.work.apply_async(args=(ms,), job_id=job_id, queue=queue)
            except BrokerUnavailable as exc:
                now = time.time()
                self.log.add(Event("producer_retry", now, now, detail=f"{job_id}: {exc}"))
                continue
            self.confirmed[job_id] = time.time()
            return

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
