"""Tasks for the periodic and delayed-at-scale tests; each records its runs in Redis."""

from __future__ import annotations

import json
from typing import Any

from sample_tasks import recorder

from supervisor import TaskContext, task


@task(bind=True)
def record(self: TaskContext, *args: Any) -> None:
    """Appends [job id, args] to t:record (the config-file schedules name it)."""
    recorder().rpush("t:record", json.dumps([self.request.id, list(args)]))


@task(bind=True, ignore_result=True)
def noop(self: TaskContext, run: str) -> None:
    """Counts distinct runs in t:ran:<run> and extra runs of the same job in t:dups."""
    if not recorder().sadd(f"t:ran:{run}", self.request.id):
        recorder().incr("t:dups")
