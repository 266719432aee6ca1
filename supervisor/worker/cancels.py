"""Which jobs held by this worker were asked to be cancelled.

The worker's main (or pool, or loop) threads note each job they hold from
the moment it is prepared until it is settled; the node-chores thread polls
the cancels hashes of those jobs' queues (one pipelined HMGET per poll,
only while jobs are held) and puts what it finds where the runner looks:
`Runner.cancelled`, (queue, job id) -> the cancel JSON (explicit job ids repeat
across queues: an id alone could name another queue's job). The runner then raises
`JobCancelled` in the job (from the SIGALRM tick: at most BEAT_EVERY later),
so a cancel reaches a running job within about a second.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from supervisor.broker import control
from supervisor.config import Config
from supervisor.errors import JobCancelled

if TYPE_CHECKING:
    import asyncio

    from supervisor.worker.aio import EventLoopThread

log = logging.getLogger("supervisor.worker")

POLL_EVERY = 0.5  # seconds between polls while jobs are held


class CancelWatch:
    """The jobs held here ((queue, id)), and the poll of their cancel requests."""

    def __init__(self, found: dict[tuple[str, str], str]) -> None:
        self.held: dict[tuple[str, str], None] = {}  # a dict: insertion order, cheap pop
        self.found = found  # the runner's `cancelled`: written here, popped by the runner

    def hold(self, job_id: str, queue: str) -> None:
        self.held[queue, job_id] = None

    def drop(self, job_id: str, queue: str) -> None:
        self.held.pop((queue, job_id), None)

    def poll(self, client: Any) -> int:
        """Read the cancel requests of the held jobs (chores thread); returns how many."""
        # A copy made in one C call: the other threads change `held` meanwhile.
        held = list(self.held)
        if not held:
            return 0
        by_queue: dict[str, list[str]] = {}
        for queue, job_id in held:
            by_queue.setdefault(queue, []).append(job_id)
        asked = control.cancel_requests(client, by_queue)
        self.found.update(asked)
        return len(asked)



class StopsOnCancel:
    """The runner's part that stops a running job asked to be cancelled: JobCancelled
    raised in it (or its asyncio task cancelled), and past `cancel_grace` the child
    killed. The state it reads is the runner's (worker/runner.py)."""

    config: Config
    consumer: str
    in_task: bool
    current_id: str
    current_queue: str
    cancelled: dict[tuple[str, str], str]
    cancel_raised: dict[str, float]
    atasks: dict[str, asyncio.Task[Any]]

    def event_loop(self) -> EventLoopThread:
        raise NotImplementedError

    def check_cancel(self) -> None:
        """At --concurrency 1 (SIGALRM, main thread): raise JobCancelled in the running
        job once asked; kill this child if it still runs `cancel_grace` seconds later."""
        job_id = self.current_id
        if not (self.in_task and job_id and (self.current_queue, job_id) in self.cancelled):
            return
        if job_id in self.atasks:  # an async job: its task is cancelled on the loop
            self.cancel_async(job_id)
            return
        raised = self.cancel_raised.get(job_id)
        if raised is None:
            self.cancel_raised[job_id] = time.monotonic()
            raise JobCancelled(job_id)
        self.past_grace(job_id, raised)

    def cancel_async(self, job_id: str) -> None:
        """Cancel an async job's task (from any thread); kill the child past the grace."""
        raised = self.cancel_raised.get(job_id)
        if raised is None:
            self.cancel_raised[job_id] = time.monotonic()
            running = self.atasks.get(job_id)
            if running is not None:
                self.event_loop().loop.call_soon_threadsafe(running.cancel)
            return
        self.past_grace(job_id, raised)

    def past_grace(self, job_id: str, raised: float) -> None:
        """Kill this child if job `job_id` ignored JobCancelled for `cancel_grace` s: the
        master restarts it, its jobs are recovered, and the cancelled one is dropped
        when fetched again (its cancel is in Redis), never re-run."""
        if time.monotonic() - raised < self.config.cancel_grace:
            return
        log.error("job %s is still running %.1fs after it was cancelled: killing worker %s "
                  "(the jobs it held are recovered; this one is not run again)", job_id,
                  self.config.cancel_grace, self.consumer)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
