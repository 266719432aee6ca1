"""Tasks for the periodic and delayed-at-scale tests; each records its runs in Redis."""

from __future__ import annotations

import json
import os
from typing import Any

import redis

from supervisor import TaskContext, task

_client: redis.Redis | None = None


def recorder() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)
    return _client


@task(bind=True)
def record(self: TaskContext, *args: Any) -> None:
    """Appends [job id, args] to t:record (the config-file schedules name it)."""
    recorder().rpush("t:record", json.dumps([self.request.id, list(args)]))


@task(bind=True, ignore_result=True)
def noop(self: TaskContext, run: str) -> None:
    """Counts distinct runs in t:ran:<run> and extra runs of the same job in t:dups."""
    if not recorder().sadd(f"t:ran:{run}", self.request.id):
        recorder().incr("t:dups")
