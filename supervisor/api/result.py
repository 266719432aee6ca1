"""AsyncResult: a job's state and result, read from its job record."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

import redis

from supervisor.api import session
from supervisor.broker import keys
from supervisor.broker.control import CancelReply
from supervisor.broker.inspect import read_job
from supervisor.core import jsonio
from supervisor.core.record import CANCELLED, FAILED, FINAL_STATES, SUCCEEDED, UNKNOWN, JobRecord
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


def read_progress(client: Any, queue: str, job_id: str, record: JobRecord,
                  ) -> dict[str, Any] | None:
    """A job's latest progress ({value, meta, at}): kept in its record once it ended, else
    the one its worker last wrote; None if it reported none."""
    kept = record.data.get("progress")
    if isinstance(kept, dict):
        return kept
    raw = client.get(keys.progress(queue, job_id))
    if raw is None:
        return None
    try:
        data = jsonio.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


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
        """One of queued, scheduled, started, retrying, succeeded, failed, cancelled
        ('unknown' if its record expired)."""
        try:
            return self._record().state
        except JobNotFound:
            return UNKNOWN

    @property
    def progress(self) -> dict[str, Any] | None:
        """The latest progress the job reported ({value, meta, at}), while it runs and
        after it ended (kept in its record); None if it reported none."""
        record = self._record()
        return read_progress(self.client, str(self.queue), self.id, record)

    def ready(self) -> bool:
        return self.state in FINAL_STATES

    def cancel(self, by: str | None = None) -> CancelReply:
        """Cancel the job: if it has not started it never will; if it runs, JobCancelled is
        raised inside it; if it ended, nothing changes (the reply's `state` says how it
        ended). `by` (default user@host) is kept in its record."""
        from supervisor.api.control import cancel

        reply = cancel([self.id], by=by, queue=self.queue, client=self.client)[0]
        self.queue = reply.queue or self.queue
        return reply

    async def acancel(self, by: str | None = None) -> CancelReply:
        """cancel(), awaited (on the async client: never blocks the loop)."""
        from supervisor.api.control import who
        from supervisor.broker import control

        if self.queue is None or self._aclient is None:
            await self._arecord()  # finds the queue, makes the client
        assert self.queue is not None
        return await control.acancel(self._aclient, self.queue, self.id, by or who())

    def get(self, timeout: float | None = None, poll: float = 0.002) -> R:
        """Wait for the job to finish and return its result.

        Raises TaskFailed when it failed for good, JobCancelled (saying who asked and
        when) when it was cancelled or expired, TimeoutError when it has
        not finished within `timeout` seconds, JobNotFound when no record
        of it exists (never enqueued, expired, or `ignore_result` task done).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll
        while True:
            record = self._record()
            if record.state == SUCCEEDED:
                return record.result  # type: ignore[no-any-return]
            time.sleep(self._pause(record, deadline, timeout, interval))
            interval = min(interval * 1.5, 0.05)

    def _pause(self, record: JobRecord, deadline: float | None, timeout: float | None,
               interval: float) -> float:
        """What get() and aget() decide on a record that is not `succeeded`: raise its
        error when it ended otherwise (TaskFailed, JobCancelled), TimeoutError past the
        deadline, else how long to wait before reading it again."""
        state = record.state
        if state == FAILED:
            raise record.task_failed(self.id)
        if state == CANCELLED:
            raise record.job_cancelled(self.id)
        if deadline is None:
            return interval
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"job {self.id} not finished after {timeout}s (state {state})")
        return min(interval, left)

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
            if record.state == SUCCEEDED:
                return record.result  # type: ignore[no-any-return]
            await asyncio.sleep(self._pause(record, deadline, timeout, interval))
            interval = min(interval * 1.5, 0.05)
