"""Turning what happened to a job into the Outcome the broker writes.

Pure functions: given the job, the task and what happened (result,
exception, invalid message, crash), build the job-hash fields, dead letter
or next attempt. No Redis here, so every branch is unit-testable.
"""

from __future__ import annotations

import json
import time
import traceback as tb
from dataclasses import dataclass
from typing import Any

from supervisor.broker.streams import Outcome
from supervisor.errors import JobTimeout, Reject, Retry
from supervisor.job import Job
from supervisor.registry import Task
from supervisor.retry import decide

# Dead-letter reasons (documented in the README).
REASON_ERROR = "error"
REASON_TIMEOUT = "timeout"
REASON_CRASHED = "crashed"
REASON_INVALID = "invalid"
REASON_REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception made into plain data (for the job hash and dead letters)."""

    exc_type: str
    message: str
    traceback: str
    reason: str

    @classmethod
    def of(cls, exc: BaseException, reason: str | None = None) -> Failure:
        shown = exc.exc if isinstance(exc, Retry) and exc.exc is not None else exc
        if reason is None:
            if isinstance(exc, JobTimeout):
                reason = REASON_TIMEOUT
            elif isinstance(exc, Reject):
                reason = REASON_REJECTED
            else:
                reason = REASON_ERROR
        text = "".join(tb.format_exception(type(shown), shown, shown.__traceback__))
        return cls(type(shown).__name__, str(shown), text, reason)


def _now() -> str:
    return repr(round(time.time(), 6))


def dead_letter(job_id: str, task: str, queue: str, failure: Failure, *, attempts: int,
                created: float | None, message: str) -> str:
    """The JSON of one dead-letter entry; `message` is the original job message."""
    return json.dumps(
        {
            "id": job_id, "task": task, "queue": queue, "reason": failure.reason,
            "exc_type": failure.exc_type, "message": failure.message,
            "traceback": failure.traceback, "attempts": attempts,
            "created": created, "failed_at": time.time(), "job": message,
        },
        separators=(",", ":"),
    )


def _failure_fields(failure: Failure, attempt: int) -> dict[str, str]:
    return {
        "exc_type": failure.exc_type, "message": failure.message,
        "traceback": failure.traceback, "reason": failure.reason,
        "attempt": str(attempt), "finished_at": _now(),
    }


def succeeded(task: Task[Any, Any], job: Job, value: Any, ttl: int) -> Outcome:
    """Outcome of a successful attempt; a result JSON cannot carry is a failure."""
    encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    fields = {"state": "succeeded", "result": encoded, "attempt": str(job.attempt),
              "finished_at": _now()}
    return Outcome(fields=fields, ttl=0 if task.ignore_result else ttl)


def failed_for_good(job: Job, failure: Failure, ttl: int, message: str) -> Outcome:
    fields = {"state": "failed", **_failure_fields(failure, job.attempt)}
    letter = dead_letter(job.id, job.task, job.queue, failure, attempts=job.attempt,
                         created=job.created, message=message)
    return Outcome(fields=fields, ttl=ttl, dead_letter=letter)


def failed(task: Task[Any, Any], job: Job, exc: BaseException, ttl: int, message: str,
           reason: str | None = None) -> Outcome:
    """Outcome of a failed attempt: the next attempt (durably delayed) or the dead letter."""
    failure = Failure.of(exc, reason)
    decision = decide(task.policy, job.attempt, exc, job.created)
    if not decision.retry:
        return failed_for_good(job, failure, ttl, message)
    due = time.time() + decision.delay
    fields = {"state": "retrying", "next_attempt_at": repr(round(due, 6)),
              **_failure_fields(failure, job.attempt)}
    return Outcome(fields=fields, ttl=ttl, retry_message=job.next_attempt().encode(),
                   retry_due_ms=int(due * 1000))


def invalid(job_id: str, queue: str, task: str, problem: str, message: str, ttl: int,
            attempts: int = 1, created: float | None = None) -> Outcome:
    """Outcome of a message that cannot run at all (undecodable, unknown task, bad args)."""
    failure = Failure("InvalidMessage", problem, "", REASON_INVALID)
    fields = {"state": "failed", **_failure_fields(failure, attempts)}
    letter = dead_letter(job_id, task, queue, failure, attempts=attempts, created=created,
                         message=message)
    return Outcome(fields=fields, ttl=ttl, dead_letter=letter)
