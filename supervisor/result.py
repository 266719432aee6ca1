"""AsyncResult: a job's state and result, read from its job hash."""

from __future__ import annotations

import json
import time
from typing import Any, Generic, TypeVar

import redis

from supervisor.broker import keys
from supervisor.errors import JobNotFound, TaskFailed

R = TypeVar("R")

STATES = ("queued", "scheduled", "started", "retrying", "succeeded", "failed")
FINAL_STATES = ("succeeded", "failed")


def find_job(
    client: redis.Redis, job_id: str, queue: str | None = None
) -> tuple[str, dict[str, str]]:
    """(queue, job hash) of `job_id`; searches every known queue when none is given."""
    members: Any = client.smembers(keys.QUEUES)
    queues: list[str] = [queue] if queue else sorted(members)
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.hgetall(keys.job(name, job_id))
    for name, record in zip(queues, pipe.execute(), strict=True):
        if record:
            return name, record
    raise JobNotFound(f"no job {job_id!r} (never enqueued, or its record expired)")


def failure_of(job_id: str, record: dict[str, str]) -> TaskFailed:
    return TaskFailed(
        job_id,
        record.get("exc_type", "Error"),
        record.get("message", ""),
        record.get("traceback", ""),
        record.get("reason", "error"),
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
            from supervisor.producer import current_producer

            self._client = current_producer().client
        return self._client

    def info(self) -> dict[str, str]:
        """The job's whole record (state, attempt, timestamps, result or error)."""
        queue, record = find_job(self.client, self.id, self.queue)
        self.queue = queue
        return record

    @property
    def state(self) -> str:
        """One of queued, scheduled, started, retrying, succeeded, failed ('unknown' if expired)."""
        try:
            return self.info().get("state", "unknown")
        except JobNotFound:
            return "unknown"

    def ready(self) -> bool:
        return self.state in FINAL_STATES

    def get(self, timeout: float | None = None, poll: float = 0.002) -> R:
        """Wait for the job to finish and return its result.

        Raises TaskFailed when it failed for good, TimeoutError when it has
        not finished within `timeout` seconds, JobNotFound when no record
        of it exists.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll
        while True:
            record = self.info()
            state = record.get("state")
            if state == "succeeded":
                return json.loads(record.get("result", "null"))  # type: ignore[no-any-return]
            if state == "failed":
                raise failure_of(self.id, record)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
            sleep_for = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, sleep_for))
            interval = min(interval * 1.5, 0.05)
