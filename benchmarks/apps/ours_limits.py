"""Tasks of benchmarks/limits_cost.py: the same INCR job with no limit, under a generous
rate limit, under a generous concurrency limit, and unique per argument."""

from __future__ import annotations

from benchmarks.apps.common import incr as incr_count
from supervisor import task


@task(name="bench.lim.none")
def none() -> None:
    incr_count()


@task(name="bench.lim.rate", rate_limit="1000000/s")
def rate() -> None:
    incr_count()


@task(name="bench.lim.concurrency", concurrency_limit=1000)
def concurrency() -> None:
    incr_count()


@task(name="bench.lim.unique", unique=True)
def unique(n: int) -> None:
    incr_count()
