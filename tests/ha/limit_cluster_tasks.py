"""Tasks of the flow-control test on a Redis Cluster, on queues of three shards.

Each records when it started and ended in the ledger (`HA_LEDGER_URL`, a plain
server of the test's own), so the test counts starts per second and jobs running
at once from what the tasks saw.
"""

from __future__ import annotations

import os
import time

from lazy_redis import LazyRedis

from supervisor import task

ledger = LazyRedis(lambda: os.environ["HA_LEDGER_URL"], decode_responses=True)


@task(queue="alpha", rate_limit="20/s")
def rated(i: int) -> int:
    ledger().rpush("lim:rated", f"{time.time():.6f}")
    return i


@task(queue="beta", concurrency_limit=3)
def capped(i: int) -> int:
    ledger().rpush("lim:capped", f"s {time.time():.6f}")
    time.sleep(0.1)
    ledger().rpush("lim:capped", f"e {time.time():.6f}")
    return i


@task(queue="delta", unique=True)
def once(day: str) -> str:
    time.sleep(0.5)  # held long enough for the duplicates enqueued meanwhile
    return day
