"""Tasks of the dashboard tests (the nodes import them with `--tasks ui_tasks`)."""

from __future__ import annotations

import os
import time
from typing import Any

from lazy_redis import LazyRedis
from tenacity import stop_after_attempt

from supervisor import periodic, task

_redis = LazyRedis(lambda: os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


@task
def add(x: int, y: int) -> int:
    return x + y


@task(stop=stop_after_attempt(1))
def fragile(switch: str, note: Any = None) -> str:
    """Fails (for good: one attempt) while the Redis key `switch` exists."""
    if _redis().exists(switch):
        raise RuntimeError(f"switch {switch} is on")
    return "ok"


@task(bind=True)
def slow(self: Any, switch: str, note: Any = None) -> str:
    """Reports half its progress, then runs while the Redis key `switch` exists (60 s at
    most: a test that forgets it does not hold the worker)."""
    self.progress(0.5, {"step": "half"})
    deadline = time.monotonic() + 60
    while _redis().exists(switch) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "done"


@periodic(every=3600, name="ui-hourly")
@task
def hourly() -> str:
    return "tick"
