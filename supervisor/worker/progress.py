"""Progress of running jobs: kept in memory, written about once a second per job.

`TaskContext.progress()` (any thread of the child) only stores the latest
report here; the node-chores thread writes the ones that changed, one
pipelined SET per flush (so a task reporting in a tight loop costs Redis
nothing more), under `sv:{q}:progress:<id>` with the record's TTL. When the
job ends its last report goes into its record, which readers prefer.
"""

from __future__ import annotations

from typing import Any

from supervisor.api.context import Request
from supervisor.broker import keys

FLUSH_EVERY = 1.0  # seconds: at most about one write per second per job


class ProgressBuffer:
    """The latest progress per running job, and which of them are not written yet."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.latest: dict[str, str] = {}  # job id -> progress JSON
        self.pending: dict[str, tuple[str, str]] = {}  # job id -> (queue, JSON) to write

    def report(self, request: Request, text: str) -> None:
        """What TaskContext.progress() calls (the job's thread)."""
        self.latest[request.id] = text
        self.pending[request.id] = (request.queue, text)

    def take(self, job_id: str) -> str | None:
        """The job ended: its last progress (for its record), forgotten here."""
        self.pending.pop(job_id, None)
        return self.latest.pop(job_id, None)

    def flush(self, client: Any) -> int:
        """Write the reports not written yet (chores thread); returns how many."""
        if not self.pending:
            return 0
        batch = []
        for job_id in list(self.pending):
            item = self.pending.pop(job_id, None)
            if item is not None:
                batch.append((job_id, *item))
        pipe = client.pipeline(transaction=False)
        for job_id, queue, text in batch:
            pipe.set(keys.progress(queue, job_id), text, ex=self.ttl)
        pipe.execute()
        return len(batch)
