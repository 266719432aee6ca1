"""AsyncResult: a job's state and result, read from its job record."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

import redis

from supervisor.broker import keys
from supervisor.core import jsonio
from supervisor.errors import JobNotFound, TaskFailed

R = TypeVar("R")

STATES = ("queued", "scheduled", "started", "retrying", "succeeded", "failed")
FINAL_STATES = ("succeeded", "failed")


def _effective_state(record: dict[str, Any], holder: str | None, now: float) -> str:
    """The state a reader should see.

    The stored state changes only at enqueue and at the end of an attempt
    (so a job costs few writes); the rest is derived: a job a worker holds
    (in the queue's `running` hash) is `started`, and a scheduled or
    retrying job whose due time has passed is `queued`.
    """
    state = str(record.get("state", "unknown"))
    if state in FINAL_STATES:
        return state
    if holder:
        return "started"
    if state in ("scheduled", "retrying") and float(record.get("due") or 0) <= now:
        return "queued"
    return state


def find_job(client: Any, job_id: str, queue: str | None = None) -> tuple[str, dict[str, Any]]:
    """(queue, record) of `job_id`, state derived; searches every known queue if none is given.

    When a worker holds the job, the record gains `worker` and `started_at`.
    """
    queues: list[str] = [queue] if queue else sorted(client.smembers(keys.QUEUES))
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.get(keys.job(name, job_id))
        pipe.hget(keys.running(name), job_id)
    replies = pipe.execute()
    for index, name in enumerate(queues):
        raw, holder = replies[2 * index], replies[2 * index + 1]
        if raw:
            record: dict[str, Any] = jsonio.loads(raw)
            record["state"] = _effective_state(record, holder, time.time())
            if holder and record["state"] == "started":
                worker, _, since = str(holder).partition(" ")
                record.update(worker=worker, started_at=float(since or 0))
            return name, record
    raise JobNotFound(f"no job {job_id!r} (never enqueued, or its record expired)")


def failure_of(job_id: str, record: dict[str, Any]) -> TaskFailed:
    return TaskFailed(
        job_id,
        str(record.get("exc_type", "Error")),
        str(record.get("message", "")),
        str(record.get("traceback", "")),
        str(record.get("reason", "error")),
    )


class AsyncResult(Generic[R]):
    """Handle on an enqueued job. `state`, `get(timeout=...)`, `info()`."""

    def __init__(self, job_id: str, *, queue: str | None = None,
                 client: redis.Redis | None = None) -> None:
        self.id = job_id
        self.queue = queue
        self._client = client

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            from supervisor.api.producer import current_producer

            self._client = current_producer().client
        return self._client

    def info(self) -> dict[str, Any]:
        """The job's whole record: state, attempts with their workers and times, result or error."""
        queue, record = find_job(self.client, self.id, self.queue)
        self.queue = queue
        return record

    @property
    def state(self) -> str:
        """One of queued, scheduled, started, retrying, succeeded, failed ('unknown' if expired)."""
        try:
            return str(self.info().get("state", "unknown"))
        except JobNotFound:
            return "unknown"

    def ready(self) -> bool:
        return self.state in FINAL_STATES

    def get(self, timeout: float | None = None, poll: float = 0.002) -> R:
        """Wait for the job to finish and return its result.

        Raises TaskFailed when it failed for good, TimeoutError when it has
        not finished within `timeout` seconds, JobNotFound when no record
        of it exists (never enqueued, expired, or `ignore_result` task done).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll
        while True:
            record = self.info()
            state = record.get("state")
            if state == "succeeded":
                return record.get("result")  # type: ignore[return-value]
            if state == "failed":
                raise failure_of(self.id, record)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
            sleep_for = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, sleep_for))
            interval = min(interval * 1.5, 0.05)
