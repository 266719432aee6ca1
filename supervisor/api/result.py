"""AsyncResult: a job's state and result, read from its job record."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

import redis

from supervisor.api import session
from supervisor.broker.inspect import read_job
from supervisor.core.record import FAILED, FINAL_STATES, SUCCEEDED, UNKNOWN, JobRecord
from supervisor.errors import JobNotFound

R = TypeVar("R")


def find_job(client: Any, job_id: str, queue: str | None = None) -> tuple[str, JobRecord]:
    """(queue, record) of `job_id`, state derived; searches every known queue if none is given.

    When a worker holds the job, the record gains `worker` and `started_at`.
    """
    found = read_job(client, job_id, queue)
    if found is None:
        raise JobNotFound(f"no job {job_id!r} (never enqueued, or its record expired)")
    name, raw, holder = found
    return name, JobRecord.read(raw, holder, time.time())


class AsyncResult(Generic[R]):
    """Handle on an enqueued job. `state`, `get(timeout=...)`, `info()`."""

    def __init__(self, job_id: str, *, queue: str | None = None,
                 client: redis.Redis | None = None, aclient: Any = None) -> None:
        self.id = job_id
        self.queue = queue
        self._client = client
        self._aclient = aclient  # a redis.asyncio client (the async producer's), for aget()

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = session.client()
        return self._client

    def _record(self) -> JobRecord:
        queue, record = find_job(self.client, self.id, self.queue)
        self.queue = queue
        return record

    def info(self) -> dict[str, Any]:
        """The job's whole record: state, attempts with their workers and times, result or error."""
        return self._record().data

    @property
    def state(self) -> str:
        """One of queued, scheduled, started, retrying, succeeded, failed ('unknown' if expired)."""
        try:
            return self._record().state
        except JobNotFound:
            return UNKNOWN

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
            record = self._record()
            state = record.state
            if state == SUCCEEDED:
                return record.result  # type: ignore[no-any-return]
            if state == FAILED:
                raise record.task_failed(self.id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
            sleep_for = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, sleep_for))
            interval = min(interval * 1.5, 0.05)

    # --- from asyncio code (FastAPI, aiohttp): the same, without blocking the loop ----

    async def _arecord(self) -> JobRecord:
        from supervisor.broker.async_streams import AsyncBroker
        from supervisor.broker.connection import connect_async

        if self._aclient is None:  # made here, not by the async producer: a client of its own
            self._aclient = connect_async(session.settings().redis_url)
        found = await AsyncBroker(self._aclient).read_job(self.id, self.queue)
        if found is None:
            raise JobNotFound(f"no job {self.id!r} (never enqueued, or its record expired)")
        self.queue, raw, holder = found
        return JobRecord.read(raw, holder, time.time())

    async def ainfo(self) -> dict[str, Any]:
        """info(), awaited."""
        return (await self._arecord()).data

    async def aget(self, timeout: float | None = None, poll: float = 0.002) -> R:
        """get(), awaited: the same result and the same errors (TaskFailed, TimeoutError,
        JobNotFound), waiting with asyncio.sleep instead of blocking the loop."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll
        while True:
            record = await self._arecord()
            state = record.state
            if state == SUCCEEDED:
                return record.result  # type: ignore[no-any-return]
            if state == FAILED:
                raise record.task_failed(self.id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
            sleep_for = interval if deadline is None else min(interval, deadline - time.monotonic())
            await asyncio.sleep(max(0.0, sleep_for))
            interval = min(interval * 1.5, 0.05)
