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

from typing import Any

from supervisor.broker import control

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
