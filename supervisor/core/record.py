"""The job record: the one module that writes it and reads it back.

A job's record is one JSON object under `sv:{q}:job:<id>` (README, "Job
records"): written whole at enqueue and at the end of each attempt (earlier
attempts travel in the message, so settling never has to read first), read
by `AsyncResult`, `supervisor result`, `supervisor job` and the timeline.
Field names are spelled here and nowhere else; readers go through
`JobRecord` and `AttemptRecord`.

Also here: the dead-letter document (written beside the failed record) and
`Failure`, an exception made into the plain data both of them carry.
"""

from __future__ import annotations

import time
import traceback as tb
from dataclasses import dataclass
from typing import Any, NamedTuple

from supervisor.core import jsonio
from supervisor.core.job import Job
from supervisor.errors import JobCancelled, JobTimeout, Reject, Retry, TaskFailed

# States (the stored ones, and the derived `started`).
QUEUED = "queued"
SCHEDULED = "scheduled"
STARTED = "started"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"  # cancelled before it started, stopped by a cancel, or expired
UNKNOWN = "unknown"  # no record (never enqueued, or expired)
STATES = (QUEUED, SCHEDULED, STARTED, RETRYING, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)

# Why a job was cancelled (the `reason` of its record's `cancelled`).
CANCEL_REQUESTED = "requested"
CANCEL_EXPIRED = "expired"

# Dead-letter and failure reasons (documented in the README).
REASON_ERROR = "error"
REASON_TIMEOUT = "timeout"
REASON_CRASHED = "crashed"
REASON_INVALID = "invalid"
REASON_REJECTED = "rejected"

# Outcomes of one attempt, as its entry in `attempts` records them.
ATTEMPT_SUCCEEDED = "succeeded"
ATTEMPT_RETRY = "retry"
ATTEMPT_FAILED = "failed"
ATTEMPT_GIVEN_BACK = "given back"  # the worker did not know the task: not an attempt used up
ATTEMPT_INTERRUPTED = "interrupted"  # stopped before its end; the job was handed back
ATTEMPT_CANCELLED = "cancelled"  # stopped by its cancel while it ran
ATTEMPT_WORKER_DIED = "worker died"  # its worker died holding it (running it, or next)
ATTEMPT_LIMITED = "waited for limit"  # sent to wait in Redis for its rate or concurrency limit


def limit_wait_entry(number: int, worker: str, at: float, kind: str, limit: str,
                     until: float | None = None) -> dict[str, Any]:
    """The history entry of a job sent to wait for its limit (kind 'rate': until its turn,
    `until`; 'concurrency': until a slot frees). Not an attempt used up."""
    entry: dict[str, Any] = {"attempt": number, "worker": worker, "finished": at,
                             "outcome": ATTEMPT_LIMITED, "reason": kind, "limit": limit}
    if until is not None:
        entry["until"] = until
    return entry


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
    """Where and when one attempt ran."""

    worker: str
    started: float
    finished: float

    def entry(self, number: int, result: str, failure: Failure | None = None) -> dict[str, Any]:
        """The attempt's entry in the record's `attempts` (no traceback: the record keeps one)."""
        # Times unrounded: orjson writes the shortest exact form, and
        # rounding costs more than the few digits it saves.
        data: dict[str, Any] = {"attempt": number, "worker": self.worker,
                                "started": self.started, "finished": self.finished,
                                "outcome": result}
        if failure is not None:
            data.update(exc_type=failure.exc_type, message=failure.message,
                        reason=failure.reason)
        return data


def unrun_entry(number: int, result: str, failure: Failure) -> dict[str, Any]:
    """The entry of an attempt that never ran here (its worker is unknown)."""
    return {"attempt": number, "outcome": result, "exc_type": failure.exc_type,
            "message": failure.message, "reason": failure.reason}


# --- writing ----------------------------------------------------------------

# The record keeps the job's arguments for the job page and `supervisor job`
# (the message is gone once the job settles), bounded: arguments whose JSON is
# longer than this are kept as a truncated preview of that JSON.
ARGS_PREVIEW_CHARS = 2048


def _bounded(record: dict[str, Any]) -> str:
    """The record's JSON, `args` and `kwargs` (set in it) cut to a preview when too long.

    The record is encoded with its arguments as they are; only when the whole text
    is longer than the bound could they be, and only then are they measured alone (an
    encoding more): the record of a tiny job costs two keys, not a check of its values.
    """
    text = jsonio.dumps(record)
    if len(text) <= ARGS_PREVIEW_CHARS:
        return text
    args = jsonio.dumps([record.get("args", ()), record.get("kwargs", {})])
    if len(args) <= ARGS_PREVIEW_CHARS:
        return text
    del record["args"], record["kwargs"]
    # The preview is that JSON cut at the bound; args_chars (its whole length) marks it
    # truncated.
    record.update(args_preview=args[:ARGS_PREVIEW_CHARS], args_chars=len(args))
    return jsonio.dumps(record)


def enqueued(job_id: str, task: str, queue: str, created: float, host: str,
             due_ms: int = 0, headers: dict[str, str] | None = None, unique: str = "",
             args: tuple[Any, ...] | list[Any] | None = None,
             kwargs: dict[str, Any] | None = None) -> str:
    """The record written at enqueue: queued, or scheduled with its due time (epoch ms).
    Without `args` it keeps none (enqueue_many: its worker's record will)."""
    record: dict[str, Any] = {"id": job_id, "task": task, "queue": queue,
                              "state": SCHEDULED if due_ms else QUEUED,
                              "created": created, "enqueued_by": host, "attempt": 1}
    if args is not None:
        record["args"], record["kwargs"] = args, kwargs or {}
    if due_ms:
        record["due"] = due_ms / 1000
    if headers:  # shown by `supervisor job`; absent when there are none
        record["headers"] = headers
    if unique:  # see _base
        record["unique"] = unique
    return _bounded(record)


def of_new_job(job: Job, due_ms: int) -> str:
    """`enqueued` for a Job."""
    written = enqueued(job.id, job.task, job.queue, job.created, job.host, due_ms, job.headers,
                       job.unique, job.args, job.kwargs)
    if job.workflow is None:
        return written
    return written[:-1] + ',"workflow":' + jsonio.dumps(workflow_of(job)) + "}"


def workflow_of(job: Job) -> dict[str, Any]:
    """What a member's record says of its workflow: its id and where its tree is kept."""
    flow = job.workflow or {}
    return {"id": flow.get("w"), "queue": flow.get("wq")}


def succeeded(job: Job, value: Any, attempt: Attempt) -> str:
    """The record of a job that succeeded. Raises TypeError if JSON cannot carry `value`."""
    # One literal (not via _final/entry): this runs for every job.
    this = {"attempt": job.attempt, "worker": attempt.worker, "started": attempt.started,
            "finished": attempt.finished, "outcome": ATTEMPT_SUCCEEDED}
    done = {
        "id": job.id, "task": job.task, "queue": job.queue, "state": SUCCEEDED,
        "created": job.created, "enqueued_by": job.host, "attempt": job.attempt,
        "attempts": [*job.history, this] if job.history else [this],
        "result": value, "finished_at": attempt.finished, "args": job.args,
        "kwargs": job.kwargs,
    }
    if job.headers:
        done["headers"] = job.headers
    if job.workflow is not None:
        done["workflow"] = workflow_of(job)
    return _bounded(done)


def retrying(following: Job, failure: Failure, due: float) -> str:
    """The record of a job waiting for its next attempt (`following`, due at `due`)."""
    return _bounded(_base(following, RETRYING, list(following.history), due=round(due, 6),
                              **failure.fields()))


def requeued(job: Job) -> str:
    """The record of a job back in its queue after an attempt that did not end (its worker
    died or was stopped at once): queued, with that attempt in its history."""
    return _bounded(_base(job, QUEUED, list(job.history)))


def cut_short(number: int, worker: str, started: float | None, ended: float,
              result: str, why: str) -> dict[str, Any]:
    """The history entry of an attempt that did not end: interrupted, or its worker died."""
    entry: dict[str, Any] = {"attempt": number, "worker": worker, "finished": ended,
                             "outcome": result, "message": why}
    if started is not None:
        entry["started"] = started
    return entry


def failed(job: Job, attempts: list[dict[str, Any]], failure: Failure) -> str:
    """The record of a job that failed for good."""
    return _bounded(_base(job, FAILED, attempts, finished_at=time.time(),
                              **failure.fields()))


def invalid(job_id: str, task: str, queue: str, failure: Failure, job: Job | None) -> str:
    """The record of a message that could not run at all (`job` None: not even decoded)."""
    written: dict[str, Any] = {"id": job_id, "task": task, "queue": queue, "state": FAILED,
                               "created": job.created if job else None,
                               "enqueued_by": job.host if job else "",
                               "attempt": job.attempt if job else 1,
                               "attempts": list(job.history) if job else [],
                               "finished_at": time.time(), **failure.fields()}
    if job is not None:
        written.update(args=job.args, kwargs=job.kwargs)
    if job is not None and job.headers:
        written["headers"] = job.headers
    return _bounded(written)


def cancelled(job: Job, by: str, at: float, reason: str,
              attempt: dict[str, Any] | None = None) -> str:
    """The record of a job cancelled by a worker: expired before it started, or stopped
    while it ran (`attempt`: that attempt's history entry). A cancel of a job that has not
    started is written by cancel.lua instead, in the same `cancelled` shape."""
    attempts = list(job.history) if attempt is None else [*job.history, attempt]
    ended = attempt.get("finished") if attempt is not None else None
    return _bounded(_base(job, CANCELLED, attempts, finished_at=ended or at,
                              cancelled={"by": by, "at": at, "reason": reason}))


def _base(job: Job, state: str, attempts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base = {"id": job.id, "task": job.task, "queue": job.queue, "state": state,
            "created": job.created, "enqueued_by": job.host, "attempt": job.attempt,
            "attempts": attempts, "args": job.args, "kwargs": job.kwargs, **extra}
    if job.headers:
        base["headers"] = job.headers
    if job.unique:  # its unique lock: a cancel of the job not held releases it (cancel.lua)
        base["unique"] = job.unique
    if job.workflow is not None:
        base["workflow"] = workflow_of(job)
    return base


def kept_message(message: str, limit: int) -> str:
    """What a dead letter keeps of a message that cannot run: its text, with bytes that
    were not UTF-8 written as \\xNN escapes, cut after `limit` characters with a note."""
    if not message.isascii():
        try:
            message.encode()
        except UnicodeEncodeError:  # read with surrogateescape: the bytes were not UTF-8
            message = message.encode("utf-8", "surrogateescape").decode("utf-8",
                                                                        "backslashreplace")
    if len(message) > limit:
        message = f"{message[:limit]}... [{len(message) - limit} more characters not kept]"
    return message


def dead_letter(job_id: str, task: str, queue: str, failure: Failure, *, attempts: int,
                created: float | None, message: str) -> str:
    """The JSON of one dead-letter entry; `message` is the original job message."""
    return jsonio.dumps({
        "id": job_id, "task": task, "queue": queue, "reason": failure.reason,
        "exc_type": failure.exc_type, "message": failure.message,
        "traceback": failure.traceback, "attempts": attempts,
        "created": created, "failed_at": time.time(), "job": message,
    })


# --- reading ----------------------------------------------------------------


class AttemptRecord:
    """One entry of a record's `attempts`, as read back."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def number(self) -> int | None:
        return self.data.get("attempt")

    @property
    def worker(self) -> str:
        return str(self.data.get("worker") or "")

    @property
    def started(self) -> float | None:
        return self.data.get("started")

    @property
    def finished(self) -> float | None:
        return self.data.get("finished")

    @property
    def outcome(self) -> str | None:
        """ATTEMPT_SUCCEEDED, ATTEMPT_RETRY or ATTEMPT_FAILED."""
        return self.data.get("outcome")

    def failure_fields(self) -> dict[str, Any]:
        """exc_type, message and reason, those that are set."""
        return {name: self.data[name] for name in ("exc_type", "message", "reason")
                if self.data.get(name)}


class JobRecord:
    """A job record as read back: the stored object, with the state a reader should see.

    `data` is the record itself (what `AsyncResult.info()` returns); while a
    worker holds the job it also has `worker` and `started_at`.
    """

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def read(cls, raw: str | bytes, holder: str | None, now: float) -> JobRecord:
        """Parse a stored record; `holder` is its entry in the queue's running hash, if any.

        The stored state changes only at enqueue and at the end of an attempt
        (so a job costs few writes); the rest is derived: a job a worker holds
        is `started`, and a scheduled or retrying job whose due time has
        passed is `queued`.
        """
        record = cls(jsonio.loads(raw))
        data = record.data
        state = str(data.get("state", UNKNOWN))
        if state not in FINAL_STATES:
            if holder:
                state = STARTED
                worker, _, since = str(holder).partition(" ")
                data.update(worker=worker, started_at=float(since or 0))
            elif state in (SCHEDULED, RETRYING) and float(data.get("due") or 0) <= now:
                state = QUEUED
        data["state"] = state
        return record

    @property
    def state(self) -> str:
        return str(self.data.get("state", UNKNOWN))

    @property
    def task(self) -> str | None:
        return self.data.get("task")

    @property
    def queue(self) -> str | None:
        return self.data.get("queue")

    @property
    def attempt(self) -> int | None:
        return self.data.get("attempt")

    @property
    def created(self) -> float | None:
        return self.data.get("created")

    @property
    def headers(self) -> dict[str, str]:
        """The job's headers (empty when it has none)."""
        found = self.data.get("headers")
        return found if isinstance(found, dict) else {}

    @property
    def enqueued_by(self) -> str | None:
        """The host that enqueued the job."""
        return self.data.get("enqueued_by")

    @property
    def due(self) -> float | None:
        """When a scheduled job or the pending retry is due (epoch s)."""
        return self.data.get("due")

    @property
    def result(self) -> Any:
        return self.data.get("result")

    @property
    def finished_at(self) -> float | None:
        return self.data.get("finished_at")

    @property
    def worker(self) -> str | None:
        """The worker holding the job right now (None when none does)."""
        return self.data.get("worker")

    @property
    def started_at(self) -> float | None:
        return self.data.get("started_at")

    @property
    def attempts(self) -> list[AttemptRecord]:
        return [AttemptRecord(entry) for entry in self.data.get("attempts") or []]

    @property
    def has_error(self) -> bool:
        """The record carries an error (failed for good, or retrying after one)."""
        return "exc_type" in self.data

    @property
    def exc_type(self) -> str | None:
        return self.data.get("exc_type")

    @property
    def message(self) -> str | None:
        """The error's message (not the job message)."""
        return self.data.get("message")

    @property
    def reason(self) -> str | None:
        """Why it failed: one of the REASON_* values."""
        return self.data.get("reason")

    def failure_fields(self) -> dict[str, Any]:
        """exc_type, message and reason, those that are set."""
        return AttemptRecord(self.data).failure_fields()

    @property
    def cancel_info(self) -> dict[str, Any]:
        """Who cancelled the job, when and why ({} unless cancelled or asked to be)."""
        info = self.data.get("cancelled") or self.data.get("cancel_requested")
        return info if isinstance(info, dict) else {}

    def job_cancelled(self, job_id: str) -> JobCancelled:
        """The error `AsyncResult.get()` raises for this cancelled job."""
        info = self.cancel_info
        at = info.get("at")
        return JobCancelled(job_id, str(info.get("by") or ""),
                            float(at) if isinstance(at, (int, float)) else None,
                            str(info.get("reason") or CANCEL_REQUESTED))

    def task_failed(self, job_id: str) -> TaskFailed:
        """The error `AsyncResult.get()` raises for this failed job."""
        data = self.data
        return TaskFailed(job_id, str(data.get("exc_type", "Error")), str(data.get("message", "")),
                          str(data.get("traceback", "")), str(data.get("reason", REASON_ERROR)))
