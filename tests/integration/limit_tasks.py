"""Tasks of the flow-control tests (tests/integration/test_limits*.py): each records in
Redis when it started and ended (time.time(): every node runs on this machine's clock),
so the test counts starts per second and jobs running at once from what the tasks saw."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from tenacity import stop_after_attempt, wait_fixed

from supervisor import task

# lazy_redis lives in the tests' folder: workers have only this one on their path.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from lazy_redis import LazyRedis  # noqa: E402

# This process's connection (made after the fork, on first use).
r = LazyRedis(lambda: os.environ["SUPERVISOR_REDIS_URL"])


@task(rate_limit="50/s")
def rated(i: int) -> int:
    """Records its start and its place in the enqueue order (`i`): the test checks the
    starts per window and that they keep roughly that order."""
    r().rpush("t:rated", f"{time.time():.6f} {i}")
    return i


@task(rate_limit="10/s", limit_key=lambda tenant, i: tenant)
def per_tenant(tenant: str, i: int) -> int:
    r().rpush(f"t:tenant:{tenant}", f"{time.time():.6f}")
    return i


@task(concurrency_limit=5, queue="capped")
def capped(i: int, seconds: float) -> int:
    """Records its start and end; sleeps long on its first run if `seconds` < 0 (a job a
    killed node holds), briefly when it runs again."""
    client = r()
    client.rpush("t:capped", f"s {time.time():.6f} {i}")
    if seconds < 0:
        seconds = 60.0 if client.set(f"t:long:{i}", "1", nx=True) else 0.05
    time.sleep(seconds)
    client.rpush("t:capped", f"e {time.time():.6f} {i}")
    return i


@task(concurrency_limit=2, limit_key=lambda account, i: account, queue="capped")
def per_account(account: str, i: int) -> int:
    client = r()
    client.rpush("t:account", f"s {time.time():.6f} {account}")
    time.sleep(0.1)
    client.rpush("t:account", f"e {time.time():.6f} {account}")
    return i


@task(unique=True)
def report(day: str) -> str:
    return day


@task(unique=True, unique_key=lambda account, **_: account)
def sync_account(account: str, note: str = "") -> str:
    return account


@task(unique_for=1)
def briefly_unique(n: int) -> int:
    return n


@task(unique=True, queue="capped")
def held_unique(seconds: float) -> str:
    """Sleeps long on its first run (its child or node is killed holding it); run again,
    says so (t:held-again) and returns once t:release exists (30 s at most), so a test
    sees the recovered job running."""
    client = r()
    if client.set("t:held-once", "1", nx=True):
        time.sleep(seconds)
    client.set("t:held-again", "1")
    deadline = time.monotonic() + 30
    while not client.exists("t:release") and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


@task(unique=True, bind=True)
def retried_unique(self: Any, n: int) -> int:
    """Asks for a retry in a minute on its first attempt (it then waits, retrying)."""
    if self.request.attempt == 1:
        raise self.retry(countdown=60)
    return n


@task(unique=True, stop=stop_after_attempt(2), wait=wait_fixed(0.05))
def doomed_unique(n: int) -> int:
    """Fails every attempt: retried once (keeping its lock), then dead-lettered."""
    r().rpush("t:doomed", n)
    raise ValueError(f"attempt for {n} fails")


def _broken_key(account: str, i: int) -> Any:
    """A limit_key with bugs: raises for "raises", returns an int for "number"."""
    if account == "raises":
        raise KeyError(account)
    return 7 if account == "number" else account


@task(concurrency_limit=2, limit_key=_broken_key, queue="capped")
def keyless(account: str, i: int) -> int:
    """Records its start and end per account (t:keyless) like per_account."""
    client = r()
    client.rpush("t:keyless", f"s {time.time():.6f} {account}")
    time.sleep(0.1)
    client.rpush("t:keyless", f"e {time.time():.6f} {account}")
    return i
