"""What becomes of a job whose worker died holding it (pure decision, no Redis).

- it had run past its task's timeout: the master killed it for that, so it
  fails with reason `timeout` under the task's retry policy;
- it has now killed `max_crashes` workers: a poison pill, dead-lettered with
  reason `crashed`;
- otherwise it goes back to the queue with its crash count raised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from supervisor.api.registry import Task
from supervisor.broker.streams import Delivery, Settlement
from supervisor.core import outcome
from supervisor.core.job import Job
from supervisor.errors import JobTimeout

log = logging.getLogger("supervisor.recovery")


@dataclass(frozen=True, slots=True)
class HandBack:
    """Put the job back in line with this (crash-counted) message."""

    delivery: Delivery
    job_id: str
    message: str


def recovery_of(delivery: Delivery, job: Job, task: Task[Any, Any], idle_ms: int,
                dead: str, max_crashes: int, ttl: int) -> Settlement | HandBack:
    now = time.time()
    attempt = outcome.Attempt(dead, now - idle_ms / 1000, now)
    if task.timeout and idle_ms / 1000 >= task.timeout:
        log.warning("job %s (%s) ran past its timeout of %ss and its worker %s was killed",
                    job.id, job.task, task.timeout, dead)
        exc = JobTimeout(f"job exceeded its timeout of {task.timeout}s; worker killed")
        return Settlement(delivery, job.id, outcome.failed(
            task, job, exc, ttl, delivery.message, attempt))
    crashed = job.after_crash()
    if crashed.crashes >= max_crashes:
        log.error("job %s (%s) killed its worker %d times: dead-lettered as a poison pill",
                  job.id, job.task, crashed.crashes)
        failure = outcome.Failure("WorkerCrashed",
                                  f"worker died while running the job {crashed.crashes} times",
                                  "", outcome.REASON_CRASHED)
        return Settlement(delivery, job.id, outcome.failed_for_good(
            job, failure, ttl, delivery.message, attempt))
    log.warning("job %s (%s) was held by dead worker %s: back in the queue", job.id, job.task,
                dead)
    return HandBack(delivery, job.id, crashed.encode())
