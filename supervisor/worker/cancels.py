"""Which jobs held by this worker were asked to be cancelled.

The worker's main (or pool, or loop) threads note each job they hold from
the moment it is prepared until it is settled; the node-chores thread polls
the cancels hashes of those jobs' queues (one pipelined HMGET per poll,
only while jobs are held) and puts what it finds where the runner looks:
`Runner.cancelled`, job id -> the cancel JSON. The runner then raises
`JobCancelled` in the job (from the SIGALRM tick: at most BEAT_EVERY later),
so a cancel reaches a running job within about a second.
"""

from __future__ import annotations

from typing import Any

from supervisor.broker import control

POLL_EVERY = 0.5  # seconds between polls while jobs are held


class CancelWatch:
    """The jobs held here (id -> queue), and the poll of their cancel requests."""

    def __init__(self, found: dict[str, str]) -> None:
        self.held: dict[str, str] = {}
        self.found = found  # the runner's `cancelled`: written here, popped by the runner

    def hold(self, job_id: str, queue: str) -> None:
        self.held[job_id] = queue

    def drop(self, job_id: str) -> None:
        self.held.pop(job_id, None)

    def poll(self, client: Any) -> int:
        """Read the cancel requests of the held jobs (chores thread); returns how many."""
        # A copy made in one C call: the other threads change `held` meanwhile.
        held = list(self.held.items())
        if not held:
            return 0
        by_queue: dict[str, list[str]] = {}
        for job_id, queue in held:
            by_queue.setdefault(queue, []).append(job_id)
        asked = control.cancel_requests(client, by_queue)
        self.found.update(asked)
        return len(asked)
