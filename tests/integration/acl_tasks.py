"""Flow-controlled tasks for the least-ACL test (test_redis_access.py): a rate limit, a
concurrency limit and a unique job run their scripts (limit_take.lua reads the
server's clock: TIME) as the user with the documented rule."""

from __future__ import annotations

from supervisor import task


@task(rate_limit="100/s")
def paced(x: int) -> int:
    return x


@task(concurrency_limit=2)
def capped(x: int) -> int:
    return x


@task(unique=True)
def once(x: int) -> int:
    return x
