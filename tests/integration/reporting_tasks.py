"""Tasks and a reporter middleware for tests/integration/test_reporting_on_a_worker.py.

`Reported` is ReportErrors with a reporter that pushes what it was given to
the list `t:reported` of the test's private Redis (named with --middleware,
so it is built with no arguments in each worker).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis

from supervisor import TaskContext, task
from supervisor.api.reporting import ReportErrors

REPORTED = "t:reported"

_lock = threading.Lock()
_client: redis.Redis | None = None


def recorder() -> redis.Redis:
    global _client
    with _lock:  # called from several threads at once
        if _client is None:  # opened in the child, on first use: never across the fork
            _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"],
                                           decode_responses=True)
        return _client


def _push(error: BaseException, job: dict[str, Any]) -> None:
    recorder().rpush(REPORTED, json.dumps({"error": type(error).__name__,
                                           "job_id": job["job_id"],
                                           "outcome": job["outcome"]}))


class Reported(ReportErrors):
    def __init__(self) -> None:
        super().__init__(_push)


@task(bind=True)
def wait_for_cancel(self: TaskContext, seconds: float = 60.0) -> str:
    recorder().set(f"t:started:{self.request.id}", os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the cancel raises JobCancelled in here
        time.sleep(0.01)
    return "not cancelled"


@task(max_retries=0)
def broken() -> None:
    raise LookupError("broken on purpose")
