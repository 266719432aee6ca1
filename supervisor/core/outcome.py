"""Turning what happened to a job into the Outcome the broker writes.

Pure functions: given the job, the task's rules and what happened (result,
exception, invalid message, crash), decide between the record of success,
the next attempt and the dead letter (the documents themselves are
record.py's). No Redis here, so every branch is unit-testable.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Protocol

from supervisor.core import record
from supervisor.core.job import Job
from supervisor.core.record import Attempt, Failure
from supervisor.core.retry import RetryPolicy, decide


class Outcome(NamedTuple):
    """What settling writes: the job record, and optionally a dead letter or next attempt."""

    record: str  # '' deletes the record (ignore_result)
    ttl: int
    dead_letter: str = ""
    retry_message: str = ""
    retry_due_ms: int = 0
    keep_record: bool = False  # acknowledge only: the record says `cancelled` already


def dropped(ttl: int) -> Outcome:
    """Outcome of a job cancelled before it started (cancel.lua wrote its record)."""
    return Outcome("", ttl, keep_record=True)


class TaskRules(Protocol):
    """What the decisions need to know of a task (the registry's Task has it)."""

    @property
    def policy(self) -> RetryPolicy: ...

    @property
    def timeout(self) -> float | None: ...

    @property
    def ignore_result(self) -> bool: ...


def succeeded(task: TaskRules, job: Job, value: Any, ttl: int, attempt: Attempt) -> Outcome:
    """Outcome of a successful attempt. Raises TypeError/ValueError if JSON cannot carry it."""
    if task.ignore_result:
        return Outcome("", ttl)
    return Outcome(record.succeeded(job, value, attempt), ttl)


def failed_for_good(job: Job, failure: Failure, ttl: int, message: str,
                    attempt: Attempt | None) -> Outcome:
    history = list(job.history)
    if attempt is not None:
        history.append(attempt.entry(job.attempt, record.ATTEMPT_FAILED, failure))
    written = record.failed(job, history, failure)
    letter = record.dead_letter(job.id, job.task, job.queue, failure, attempts=job.attempt,
                                created=job.created, message=message)
    return Outcome(record=written, ttl=ttl, dead_letter=letter)


def failed(task: TaskRules, job: Job, exc: BaseException, ttl: int, message: str,
           attempt: Attempt | None, reason: str | None = None) -> Outcome:
    """Outcome of a failed attempt: the next attempt (durably delayed) or the dead letter."""
    failure = Failure.of(exc, reason)
    decision = decide(task.policy, job.attempt, exc, job.created)
    if not decision.retry:
        return failed_for_good(job, failure, ttl, message, attempt)
    due = time.time() + decision.delay
    this = (attempt.entry(job.attempt, record.ATTEMPT_RETRY, failure) if attempt is not None
            else record.unrun_entry(job.attempt, record.ATTEMPT_RETRY, failure))
    following = job.next_attempt(this)
    return Outcome(record=record.retrying(following, failure, due), ttl=ttl,
                   retry_message=following.encode(), retry_due_ms=int(due * 1000))


def invalid(job_id: str, queue: str, task: str, problem: str, message: str, ttl: int,
            job: Job | None = None) -> Outcome:
    """Outcome of a message that cannot run at all (undecodable, unknown task, bad args)."""
    failure = Failure("InvalidMessage", problem, "", record.REASON_INVALID)
    written = record.invalid(job_id, task, queue, failure, job)
    letter = record.dead_letter(job_id, task, queue, failure, attempts=job.attempt if job else 1,
                                created=job.created if job else None, message=message)
    return Outcome(record=written, ttl=ttl, dead_letter=letter)


# A job of a task its worker does not know is given back, again and again, for
# a worker that knows it (config unknown_task_wait seconds, counted from the
# first give-back), then dead-lettered as invalid. The waits are short so that
# while any worker of the queue knows the task, one of them meets the job
# within a few offers; each offer costs one hand-back.
GIVE_BACK_WAIT_MAX = 2.0


def give_back_wait(times: int) -> float:
    """Seconds before a job given back `times` times is offered again."""
    return min(GIVE_BACK_WAIT_MAX, 0.25 * 2 ** times)


def given_back(job: Job, problem: str, ttl: int, attempt: Attempt,
               window: float) -> Outcome | None:
    """Hand a job of an unknown task on to a worker that may know it; None once it has
    been given back for `window` seconds (the caller dead-letters it as invalid)."""
    now = attempt.finished
    if window <= 0 or (job.given_back and now - job.given_back_at >= window):
        return None
    failure = Failure("UnknownTask", problem, "", record.REASON_INVALID)
    following = job.given_back_by(attempt.entry(job.attempt, record.ATTEMPT_GIVEN_BACK,
                                                failure), now)
    due = now + give_back_wait(job.given_back)
    return Outcome(record=record.retrying(following, failure, due), ttl=ttl,
                   retry_message=following.encode(), retry_due_ms=int(due * 1000))
