"""Tasks of the workflow tests (tests/integration/test_workflows.py)."""

from __future__ import annotations

import os
from typing import Any

import redis
from tenacity import wait_fixed

from supervisor import task

OTHER = "wf-other"  # a second queue: steps that cross queues go through forwards


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


@task
def add(x: int, y: int) -> int:
    return x + y


@task(queue=OTHER)
def add_other(x: int, y: int) -> int:
    return x + y


@task
def total(values: list[int], extra: int = 0) -> int:
    return sum(values) + extra


@task(queue=OTHER)
def total_other(values: list[int]) -> int:
    return sum(values)


@task
def collect(values: list[Any]) -> list[Any]:
    return values


@task
def counted_total(values: list[int], key: str) -> int:
    """A chord callback that counts its runs (the test reads the counter)."""
    _client().incr(key)
    return sum(values)


@task(max_retries=0)
def always_fails(x: int) -> int:
    raise ValueError(f"no good: {x}")


@task
def constant() -> str:
    return "fixed"


@task
def headers_of(_previous: Any = None) -> dict[str, str]:
    from supervisor.api.context import Request  # noqa: F401 - for the reader

    return {}


@task(bind=True)
def my_headers(self: Any, _previous: Any = None) -> dict[str, str]:
    return dict(self.request.headers or {})


@task
def wait_for(key: str) -> str:
    """Blocks until `key` exists (the test releases it), then returns it."""
    client = _client()
    while not client.exists(key):
        client.blpop([key + ":never"], timeout=0.05)
    return key


@task
def slow_add(x: int, y: int) -> int:
    import time

    time.sleep(0.004)
    return x + y


@task(bind=True)
def noted_total(self: Any, values: list[int], key: str) -> int:
    """A chord callback noting each run (its job id) in list `key`."""
    _client().rpush(key, self.request.id)
    return sum(values)


@task(wait=wait_fixed(0.2))
def flaky_add(x: int, y: int, key: str) -> int:
    """Fails its first attempt (counted in `key`), succeeds on the retry."""
    if _client().incr(f"{key}:{x}") == 1:
        raise ConnectionError("first attempt fails")
    return x + y


@task
async def async_add(x: int, y: int) -> int:
    return x + y


@task(expires=0.5)
def brief_add(x: int, y: int) -> int:
    """A job that must start within half a second of being made (or of being due)."""
    return x + y
