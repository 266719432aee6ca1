"""Turning what happened to a job into the Outcome the broker writes.

Pure functions: given the job, the task and what happened (result,
exception, invalid message, crash), build the job record, dead letter or
next attempt. No Redis here, so every branch is unit-testable.

The job record is one JSON document (see README, "Job records"); it is
written whole at the end of each attempt from the message alone (earlier
attempts travel in the message), so settling never has to read first.
"""

from __future__ import annotations

import time
import traceback as tb
from dataclasses import dataclass
from typing import Any, NamedTuple

from supervisor.api.registry import Task
from supervisor.broker.reconnect import decide
from supervisor.broker.streams import Outcome
from supervisor.core import jsonio
from supervisor.core.job import Job
from supervisor.errors import JobTimeout, Reject, Retry

# Dead-letter reasons (documented in the README).
REASON_ERROR = "error"
REASON_TIMEOUT = "timeout"
REASON_CRASHED = "crashed"
REASON_INVALID = "invalid"
REASON_REJECTED = "rejected"


def _dumps(data: Any) -> str:
    return jsonio.dumps(data)


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception made into plain data (for the job record and dead letters)."""

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

    def fields(self) -> dict[str, str]:
        return {"exc_type": self.exc_type, "message": self.message,
                "traceback": self.traceback, "reason": self.reason}


class Attempt(NamedTuple):
    """Where and when one attempt ran (None for messages that never ran)."""

    worker: str
    started: float
    finished: float

    def entry(self, number: int, result: str, failure: Failure | None = None) -> dict[str, Any]:
        # Times unrounded: orjson writes the shortest exact form, and
        # rounding costs more than the few digits it saves.
        data: dict[str, Any] = {"attempt": number, "worker": self.worker,
                                "started": self.started, "finished": self.finished,
                                "outcome": result}
        if failure is not None:
            data.update(exc_type=failure.exc_type, message=failure.message,
                        reason=failure.reason)
        return data


def initial_record(job: Job, due_ms: int) -> str:
    """The record written at enqueue (state queued, or scheduled with its due time)."""
    return enqueued_record(job.id, job.task, job.queue, job.created, job.host, due_ms)


def enqueued_record(job_id: str, task: str, queue: str, created: float, host: str,
                    due_ms: int = 0) -> str:
    """initial_record from the fields themselves (the producer's batch keeps no Job)."""
    record: dict[str, Any] = {"id": job_id, "task": task, "queue": queue,
                              "state": "scheduled" if due_ms else "queued",
                              "created": created, "enqueued_by": host, "attempt": 1}
    if due_ms:
        record["due"] = due_ms / 1000
    return _dumps(record)


def _record(job: Job, state: str, attempts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": job.id, "task": job.task, "queue": job.queue, "state": state,
            "created": job.created, "enqueued_by": job.host, "attempt": job.attempt,
            "attempts": attempts, **extra}


def dead_letter(job_id: str, task: str, queue: str, failure: Failure, *, attempts: int,
                created: float | None, message: str) -> str:
    """The JSON of one dead-letter entry; `message` is the original job message."""
    return _dumps({
        "id": job_id, "task": task, "queue": queue, "reason": failure.reason,
        "exc_type": failure.exc_type, "message": failure.message,
        "traceback": failure.traceback, "attempts": attempts,
        "created": created, "failed_at": time.time(), "job": message,
    })


def succeeded(task: Task[Any, Any], job: Job, value: Any, ttl: int, attempt: Attempt) -> Outcome:
    """Outcome of a successful attempt. Raises TypeError/ValueError if JSON cannot carry it."""
    if task.ignore_result:
        return Outcome("", ttl)
    # Built in one literal (not via _record/entry): this runs for every job.
    this = {"attempt": job.attempt, "worker": attempt.worker, "started": attempt.started,
            "finished": attempt.finished, "outcome": "succeeded"}
    return Outcome(jsonio.dumps({
        "id": job.id, "task": job.task, "queue": job.queue, "state": "succeeded",
        "created": job.created, "enqueued_by": job.host, "attempt": job.attempt,
        "attempts": [*job.history, this] if job.history else [this],
        "result": value, "finished_at": attempt.finished,
    }), ttl)


def failed_for_good(job: Job, failure: Failure, ttl: int, message: str,
                    attempt: Attempt | None) -> Outcome:
    history = list(job.history)
    if attempt is not None:
        history.append(attempt.entry(job.attempt, "failed", failure))
    record = _record(job, "failed", history, finished_at=time.time(), **failure.fields())
    letter = dead_letter(job.id, job.task, job.queue, failure, attempts=job.attempt,
                         created=job.created, message=message)
    return Outcome(record=_dumps(record), ttl=ttl, dead_letter=letter)


def failed(task: Task[Any, Any], job: Job, exc: BaseException, ttl: int, message: str,
           attempt: Attempt | None, reason: str | None = None) -> Outcome:
    """Outcome of a failed attempt: the next attempt (durably delayed) or the dead letter."""
    failure = Failure.of(exc, reason)
    decision = decide(task.policy, job.attempt, exc, job.created)
    if not decision.retry:
        return failed_for_good(job, failure, ttl, message, attempt)
    due = time.time() + decision.delay
    this = (attempt.entry(job.attempt, "retry", failure) if attempt is not None
            else {"attempt": job.attempt, "outcome": "retry", **failure.fields()})
    this.pop("traceback", None)
    following = job.next_attempt(this)
    record = _record(following, "retrying", list(following.history), due=round(due, 6),
                     **failure.fields())
    return Outcome(record=_dumps(record), ttl=ttl, retry_message=following.encode(),
                   retry_due_ms=int(due * 1000))


def invalid(job_id: str, queue: str, task: str, problem: str, message: str, ttl: int,
            job: Job | None = None) -> Outcome:
    """Outcome of a message that cannot run at all (undecodable, unknown task, bad args)."""
    failure = Failure("InvalidMessage", problem, "", REASON_INVALID)
    record = {"id": job_id, "task": task, "queue": queue, "state": "failed",
              "created": job.created if job else None,
              "enqueued_by": job.host if job else "", "attempt": job.attempt if job else 1,
              "attempts": list(job.history) if job else [], "finished_at": time.time(),
              **failure.fields()}
    letter = dead_letter(job_id, task, queue, failure, attempts=job.attempt if job else 1,
                         created=job.created if job else None, message=message)
    return Outcome(record=_dumps(record), ttl=ttl, dead_letter=letter)
