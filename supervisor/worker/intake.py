"""What the runner checks of a job before it runs: each fetched batch decoded once
(payload size, the message's shape), which jobs are marked started, whether one
must run alone, and whether the arguments fit the task's signature.

A part of the runner (worker/runner.py Runner, which mixes it in and owns the
state it uses).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from supervisor.api.registry import Task
from supervisor.broker.streams import Delivery
from supervisor.config import Config
from supervisor.core.job import Job, decode
from supervisor.errors import InvalidMessage

FAST_TASK = 0.01  # seconds: jobs of tasks usually faster are not marked started


class Intake:
    """Decoding and argument checks of Runner (uses its state, set in Runner.__init__)."""

    config: Config
    consumer: str
    durations: dict[str, float]  # per task, moving average of seconds
    decoded: dict[tuple[str, str], Job | InvalidMessage]
    suspects: bool
    _signatures: dict[str, inspect.Signature]
    _fitting: set[tuple[str, int, tuple[str, ...]]]

    def is_suspect(self, delivery: Delivery) -> bool:
        """Whether this job's worker died while it ran beside others (it must run alone)."""
        job = self.decoded.get((delivery.queue, delivery.entry_id))
        return isinstance(job, Job) and job.suspect

    def expected_seconds(self, delivery: Delivery) -> float:
        """How long this job's task usually runs here (0 when not known yet)."""
        job = self.decoded.get((delivery.queue, delivery.entry_id))
        return self.durations.get(job.task, 0.0) if isinstance(job, Job) else 0.0

    def decode_batch(self, deliveries: list[Delivery],
                     check: frozenset[str] | set[str] = frozenset()) -> dict[str, dict[str, str]]:
        """Decode a fetched batch once; return {queue: {job id: holder}} for the running hash.

        Jobs of tasks that usually finish within FAST_TASK seconds are left
        out: their `started` state would last too short to be seen, and
        marking them costs a round trip before the job can start (pickup
        latency). Readers see them go from queued to succeeded. Except in the
        queues of `check` (those with cancel requests pending when the batch was
        read): there every job is taken, which tells which were cancelled.
        """
        self.decoded = {}
        self.suspects = False
        taken: dict[str, dict[str, str]] = {}
        stamp = ""  # made only when some job is marked (it sits on the pickup path)
        limit = self.config.max_payload_bytes
        for delivery in deliveries:
            try:
                if len(delivery.message) > limit // 4 and oversize(delivery.message, limit):
                    raise InvalidMessage(
                        f"message is {len(delivery.message.encode('utf-8', 'surrogateescape'))}"
                        f" bytes, over max_payload_bytes ({limit}); it was not decoded")
                job: Job | InvalidMessage = decode(delivery.message)
            except InvalidMessage as exc:
                job = exc
            self.decoded[delivery.queue, delivery.entry_id] = job
            if isinstance(job, Job) and job.suspect:
                self.suspects = True
            if isinstance(job, Job) and (delivery.queue in check or
                                         self.durations.get(job.task, FAST_TASK) >= FAST_TASK):
                stamp = stamp or f"{self.consumer} {time.time():.6f}"
                taken.setdefault(delivery.queue, {})[job.id] = stamp
        return taken

    def _decoded(self, delivery: Delivery) -> Job:
        job = self.decoded.pop((delivery.queue, delivery.entry_id), None)
        if job is None:
            return decode(delivery.message)
        if isinstance(job, InvalidMessage):
            raise job
        return job

    def _fits(self, task: Task[Any, Any], job: Job) -> str | None:
        # Binding is costly; a call shape that fitted once fits again.
        shape = (task.name, len(job.args), tuple(job.kwargs))
        if shape in self._fitting:
            return None
        signature = self._signatures.get(task.name)
        if signature is None:
            signature = self._signatures[task.name] = inspect.signature(task.fn)
        try:
            if task.bind:
                signature.bind(None, *job.args, **job.kwargs)
            else:
                signature.bind(*job.args, **job.kwargs)
        except TypeError as exc:
            return f"arguments do not fit {task.name}{signature}: {exc}"
        if len(self._fitting) < 10_000:
            self._fitting.add(shape)
        return None


def oversize(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes in UTF-8 (callers first rule out the
    usual short text with len(), which is free)."""
    return len(text) > limit or len(text.encode("utf-8", "surrogateescape")) > limit
