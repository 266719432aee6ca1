"""Testing users' tasks: run the jobs their code enqueued, in-process, the real way.

    from supervisor.testing import drain

    def test_add():
        result = add.delay(2, 3)
        drain()
        assert result.get() == 5

`drain()` is not an "eager" mode: the code under test enqueues as in
production (the message is encoded to JSON and written to Redis, through
the producer's hooks), and drain() runs each job the way a worker does,
through the worker's own runner: the message is read back and decoded,
the arguments bound to the task's signature, the task run, its result
encoded, retries written to the delayed set and dead letters to the
dead-letter stream, the record written as `supervisor job` shows it. Only
the waits are skipped: a retry (or a countdown) due later is run at once.
So a test sees what a worker would: an argument JSON cannot carry fails
at `.delay()`, a tuple comes back as a list, a task's retry policy runs.

It needs a Redis: the one the producer is configured for (`configure`,
SUPERVISOR_REDIS_URL), which is what the pytest fixtures
(`supervisor.testing.plugin`: `supervisor_drain`, `supervisor_testing`)
set up, on the embedded server or a Redis the test gives. No worker
process, no fork, no master: the task runs in the test's own process and
thread (breakpoints and mocks work).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.api import session
from supervisor.broker import inspect
from supervisor.broker.streams import Broker, Settlement
from supervisor.config import replace
from supervisor.fork.status import ChildStatus
from supervisor.worker.recovery import consumer_for_process
from supervisor.worker.runner import Runner

__all__ = ["DrainError", "Drained", "dead_letters", "drain"]

FOREVER_MS = 2**62  # "now" for promotion when waits are skipped: every delayed job is due
BATCH = 100


class DrainError(AssertionError):
    """drain() ran more jobs than `max_jobs` (a task that enqueues itself forever?)."""


@dataclass
class Drained:
    """What one drain() ran: attempts by outcome, and the ids of the jobs."""

    succeeded: int = 0
    retried: int = 0  # failed attempts that were given another
    failed: int = 0  # dead-lettered (failed for good, or invalid)
    job_ids: list[str] = field(default_factory=list)  # in the order their attempts ran

    @property
    def attempts(self) -> int:
        return self.succeeded + self.retried + self.failed

    def count(self, settlements: list[Settlement]) -> None:
        for item in settlements:
            self.job_ids.append(item.job_id)
            if item.outcome.retry_message:
                self.retried += 1
            elif item.outcome.dead_letter:
                self.failed += 1
            else:
                self.succeeded += 1


def drain(queues: Sequence[str] | None = None, *, skip_waits: bool = True,
          max_jobs: int = 10_000) -> Drained:
    """Run every job of `queues` (default: every queue known to Redis) until none is left.

    Jobs that the tasks enqueue meanwhile run too. With `skip_waits` (the
    default) delayed jobs and retries run now instead of when due; without
    it only what is due now runs. Raises DrainError after `max_jobs`
    attempts. Task errors do not raise here: they are the job's outcome
    (`result.get()` raises TaskFailed, `dead_letters()` lists them).
    """
    # A job of a task not registered here is dead-lettered at once instead of
    # offered again for a worker that knows it (there is none in a test).
    config = replace(session.settings(), unknown_task_wait=0)
    client = session.client(config)
    broker = Broker.for_config(client, config)
    names = list(queues) if queues else inspect.known_queues(client)
    drained = Drained()
    if not names:
        return drained
    broker.ensure_groups(names)
    consumer = str(consumer_for_process(config.node_name))
    runner = Runner(config, consumer, ChildStatus())
    runner.chord_results = broker.chord_results  # workflows: a chord callback's input
    while True:
        _promote(broker, names, FOREVER_MS if skip_waits else int(time.time() * 1000))
        broker.forward(names)  # workflow steps bound for another queue
        deliveries = broker.fetch(consumer, names, BATCH, None)
        if not deliveries:
            return drained
        taken = runner.decode_batch(deliveries)
        if taken:
            broker.mark_taken(taken)
        settlements = [runner.process(delivery) for delivery in deliveries]
        broker.settle(consumer, settlements, int(time.time() * 1000))
        drained.count(settlements)
        if drained.attempts > max_jobs:
            raise DrainError(f"drain() ran {drained.attempts} attempts and jobs are still "
                             f"coming (max_jobs={max_jobs}): does a task enqueue itself?")


def _promote(broker: Broker, queues: list[str], now_ms: int) -> None:
    while broker.promote(queues, now_ms, 1000) >= 1000:
        pass


def dead_letters(queue: str = "default") -> list[dict[str, Any]]:
    """The dead letters of `queue`, oldest first: id, task, reason, exc_type, message, ..."""
    client = session.client()
    return [letter.data for letter in reversed(inspect.dead_letters(client, queue))]
