"""Control over jobs and queues, for the CLI, the dashboard and programs alike:
cancel jobs (one, many, by task or queue), run a waiting job now, pause and resume a
queue.

Every request is stored in Redis (broker/control.py), so it holds across
restarts of workers, nodes and Redis (with persistence). `by` names who
asked (default user@host); the job's record keeps it.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Iterable
from typing import Any

from supervisor.api import session
from supervisor.broker import control, keys
from supervisor.broker.control import CancelReply
from supervisor.broker.inspect import known_queues, read_job
from supervisor.core.record import FINAL_STATES

__all__ = ["CancelReply", "cancel", "cancel_many", "pause", "paused", "resume",
           "retry_now", "wait_ended", "who"]


def who() -> str:
    """The default `by` of a request: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "?"
    return f"{user}@{socket.gethostname()}"


def cancel(job_ids: Iterable[str], *, by: str | None = None, queue: str | None = None,
           client: Any = None) -> list[CancelReply]:
    """Cancel each job: one that has not started never will; a running one gets
    `JobCancelled` raised inside it; an ended one is left alone (its reply says how it
    ended). `queue` skips looking the job up in every known queue."""
    client = client or session.client()
    asker = by or who()
    replies: list[CancelReply] = []
    for job_id in job_ids:
        found = read_job(client, job_id, queue)
        if found is None:
            replies.append(CancelReply(job_id, queue, "unknown", ""))
            continue
        replies.append(control.cancel(client, found[0], job_id, asker))
    return replies


def cancel_many(*, queue: str | None = None, task: str | None = None, by: str | None = None,
                client: Any = None) -> list[CancelReply]:
    """Cancel every job not ended yet of `queue` (every known queue if None), only those
    of `task` if given. Jobs enqueued meanwhile are not cancelled."""
    if queue is None and task is None:
        raise ValueError("give queue=, task= or both (cancelling every job of every queue "
                         "is not done by accident)")
    client = client or session.client()
    asker = by or who()
    replies: list[CancelReply] = []
    for name in [queue] if queue else known_queues(client):
        ids = control.jobs_of(client, name, task)
        if task is None:  # the running ones too (by task: their messages name it)
            ids += [str(i) for i in client.hkeys(keys.running(name)) if str(i) not in ids]
        replies += [control.cancel(client, name, job_id, asker) for job_id in ids]
    return replies


def wait_ended(job_ids: Iterable[str], timeout: float, client: Any = None,
               poll: float = 0.05) -> dict[str, str]:
    """Wait up to `timeout` s for the jobs to end; job id -> state (final or not)."""
    client = client or session.client()
    from supervisor.core.record import JobRecord

    pending = list(job_ids)
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        for job_id in list(pending):
            found = read_job(client, job_id)
            state = "unknown" if found is None else JobRecord.read(
                found[1], found[2], time.time()).state
            states[job_id] = state
            if state in FINAL_STATES or state == "unknown":
                pending.remove(job_id)
        if not pending or time.monotonic() >= deadline:
            return states
        time.sleep(poll)


def retry_now(job_id: str, *, queue: str | None = None, client: Any = None) -> bool:
    """Run a scheduled or retrying job now instead of at its due time (within a worker's
    promote turn); False when the job is not waiting for its time."""
    client = client or session.client()
    found = read_job(client, job_id, queue)
    return found is not None and control.retry_now(client, found[0], job_id)


def pause(queue: str, *, by: str | None = None, client: Any = None) -> None:
    """Pause `queue` on every node: workers stop taking its jobs within about a second
    (running jobs finish; producers still enqueue; delayed jobs become due but wait)."""
    control.pause(client or session.client(), queue, by or who())


def resume(queue: str, *, client: Any = None) -> bool:
    """Resume `queue`; False if it was not paused."""
    return control.resume(client or session.client(), queue)


def paused(queues: Iterable[str] | None = None, *, client: Any = None,
           ) -> dict[str, dict[str, Any]]:
    """The paused queues (of `queues`, or of every known queue): queue -> {by, at}."""
    client = client or session.client()
    names = list(queues) if queues is not None else known_queues(client)
    return control.paused(client, names)
