"""Running `async def` tasks: on the child's event loop, under their soft timeout and cancel.

A part of the runner (worker/runner.py Runner, which mixes it in): the sync
path calls `_awaited` from a thread through `event_loop()`, a many-slot child
awaits `aexecute` as a task of the loop. The loop and asyncio are loaded only
by the first `async def` job, never at boot.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from supervisor.api.context import Request
from supervisor.api.registry import Task
from supervisor.core.job import Job
from supervisor.errors import JobCancelled
from supervisor.fork.status import ChildStatus
from supervisor.worker.slots import Slot

if TYPE_CHECKING:
    import asyncio

    from supervisor.worker.aio import EventLoopThread


class AsyncFailure:
    """What an async task raised, carried out of the event loop as a value."""

    __slots__ = ("exc", "timed_out")

    def __init__(self, exc: BaseException, timed_out: bool) -> None:
        self.exc = exc
        self.timed_out = timed_out


class RunsCoroutines:
    """What Runner does for `async def` tasks (uses its state, set in Runner.__init__)."""

    status: ChildStatus
    cancelled: dict[tuple[str, str], str]
    cancel_raised: dict[str, float]  # job id -> monotonic when its cancel was raised
    atasks: dict[str, asyncio.Task[Any]]  # async jobs running: id -> task
    _loop: EventLoopThread | None

    if TYPE_CHECKING:  # Runner's, shared with the sync path
        def _failed(self, task: Task[Any, Any], job: Job, exc: BaseException,
                    started: float, timed_out: bool) -> BaseException: ...

        def _ended(self, job: Job, started: float, failed: bool,
                   slot: Slot | None) -> tuple[float, float]: ...

    async def aexecute(self, task: Task[Any, Any], job: Job, slot: Slot) -> Any:
        """Run an `async def` task as a task of the child's event loop (a many-slot child);
        sets `slot.ran`. Returns its value, or the exception it raised."""
        request = Request(job.id, job.task, job.queue, job.attempt, job.args, job.kwargs,
                          job.headers)
        self.status.slot_begins(slot.index, job.id, job.task, task.timeout)
        slot.current_task = job.task
        import asyncio  # loaded with the loop, by the first async def job (not at boot)

        running = asyncio.current_task()
        if running is not None:  # what the loop-lag watchdog names
            running.set_name(f"{job.task}[{job.id}]")
        started = time.time()
        slot.ran = (started, 0.0)
        failed = True
        try:
            if (job.queue, job.id) in self.cancelled:  # asked once taken, before it began
                self.cancel_raised[job.id] = time.monotonic()
                return self._failed(task, job, JobCancelled(job.id), started, False)
            value = await self._awaited(task.run_job(request), task, job)
            if isinstance(value, AsyncFailure):
                return self._failed(task, job, value.exc, started, value.timed_out)
            failed = False
            return value
        finally:
            slot.ran = self._ended(job, started, failed, slot)

    async def _awaited(self, coro: Any, task: Task[Any, Any], job: Job) -> Any:
        """Await a task's coroutine under its soft timeout; a failure comes back wrapped
        (an exception raised through the loop's future would lose which it was)."""
        import asyncio

        running = asyncio.current_task()
        if running is not None:
            self.atasks[job.id] = running
        try:
            if not task.timeout:
                return await coro
            async with asyncio.timeout(task.timeout) as limit:
                return await coro
        except BaseException as exc:  # noqa: BLE001 - every task error is an outcome
            timed_out = task.timeout is not None and limit.expired()
            if isinstance(exc, asyncio.CancelledError) and not timed_out:
                if job.id in self.cancel_raised:  # its cancel: JobCancelled is the outcome
                    if running is not None:
                        running.uncancel()
                    return AsyncFailure(JobCancelled(job.id), False)
                raise  # the loop itself is going away
            return AsyncFailure(exc, timed_out)
        finally:
            self.atasks.pop(job.id, None)

    def event_loop(self) -> EventLoopThread:
        """The child's event loop for `async def` tasks, started on first use."""
        if self._loop is None:
            # Imported here: a child that runs no async def task never loads asyncio.
            from supervisor.worker.aio import EventLoopThread

            self._loop = EventLoopThread()
        return self._loop
