"""Priorities and queue order with real workers: the order in which jobs start.

Each task appends "<queue>:<label>" to t:order when it starts (priority_tasks.py),
so the tests assert on order and counts, never on times.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

import priority_tasks as pt
import pytest
import redis
from helpers import wait_until

from supervisor import enqueue_many
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")

PREFETCH = 10  # small, so "within one fetch round" is a tight bound


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def backlog(queue: str, count: int, label: str = "low") -> None:
    mark = pt.MARKS[queue]
    for start in range(0, count, 5000):
        enqueue_many(mark.s(label) for _ in range(start, min(count, start + 5000)))


def order(client: redis.Redis) -> list[str]:
    return list(client.lrange("t:order", 0, -1))


@pytest.mark.parametrize(("concurrency", "queues", "urgent_queue", "workers"), [
    (1, "pq", "pq", 1),
    (4, "pq", "pq", 1),
    (1, "pq:1,other:1", "other", 1),
    (4, "pq,other", "pq", 1),
    (2, "pq", "pq", 2),  # two `supervisor worker` processes on the one backlog
])
def test_a_priority_9_job_behind_20000_starts_within_one_fetch_round(
        start_worker: Callable[..., Any], client: redis.Redis, concurrency: int, queues: str,
        urgent_queue: str, workers: int) -> None:
    names = [item.partition(":")[0] for item in queues.split(",")]
    for name in names:
        backlog(name, 20_000 // len(names))
    for _ in range(workers):
        start_worker(queues=queues, tasks="priority_tasks", SUPERVISOR_PREFETCH=str(PREFETCH),
                     SUPERVISOR_CONCURRENCY=str(concurrency))
    wait_until(lambda: client.llen("t:order") >= 200, timeout=60, what="the backlog runs")
    pt.MARKS[urgent_queue].apply_async(("urgent",), priority=9)
    # Counted once the enqueue returned: jobs that started while this process was still
    # sending it (slow under load) do not count against the worker.
    before = client.llen("t:order")
    wait_until(lambda: f"{urgent_queue}:urgent" in order(client), timeout=60,
               what="the urgent job started")
    position = order(client).index(f"{urgent_queue}:urgent")
    # Started after at most what the workers held when it was enqueued (each its batch,
    # and one fetch in flight) and the jobs running then: the worker that takes it
    # starts it next, the other keeps starting what it held. Never behind the backlog.
    assert position - before <= workers * (2 * PREFETCH + concurrency), (position, before)
    waiting = sum(client.xlen(keys.stream(name)) for name in names)
    assert waiting > 5_000  # the backlog was still there: it did wait behind nothing


@pytest.mark.parametrize("workers", [1, 2])
def test_weighted_queues_start_jobs_6_3_1(start_worker: Callable[..., Any],
                                           client: redis.Redis, workers: int) -> None:
    for name in ("wa", "wb", "wc"):
        backlog(name, 3_000)
    for _ in range(workers):  # two: each `supervisor worker` weighs its own fetches
        start_worker(queues="wa:6,wb:3,wc:1", tasks="priority_tasks",
                     SUPERVISOR_PREFETCH=str(PREFETCH))
    wait_until(lambda: client.llen("t:order") >= 2_000, timeout=90, what="2,000 jobs started")
    mix = Counter(item.partition(":")[0] for item in order(client)[:2_000])
    # Deficit round robin is exact over rounds up to one job per queue; the first
    # 2,000 starts cut a batch (at most PREFETCH jobs) short per worker: 1 % of 2,000
    # per worker covers it (the workers' rounds add up, each exact alike).
    for name, share in (("wa", 0.6), ("wb", 0.3), ("wc", 0.1)):
        assert abs(mix[name] - 2_000 * share) <= 20 * workers, mix


def test_strict_queue_order(start_worker: Callable[..., Any], client: redis.Redis) -> None:
    backlog("sa", 300, "first")
    backlog("sb", 3_000, "second")
    start_worker(queues="sa,sb", tasks="priority_tasks", SUPERVISOR_PREFETCH=str(PREFETCH))
    wait_until(lambda: client.llen("t:order") >= 500, timeout=60, what="sb jobs run")
    started = order(client)
    assert [item.partition(":")[0] for item in started[:300]] == ["sa"] * 300
    assert set(item.partition(":")[0] for item in started[300:]) == {"sb"}
    # New work on `sa` is taken before the rest of sb's backlog.
    before = client.llen("t:order")
    enqueue_many(pt.MARKS["sa"].s("again") for _ in range(5))
    wait_until(lambda: order(client).count("sa:again") == 5, timeout=30, what="sa runs again")
    last = max(i for i, item in enumerate(order(client)) if item == "sa:again")
    assert last - before <= 2 * PREFETCH + 5
    assert client.xlen(keys.stream("sb")) > 1_000


def test_sigkill_of_a_child_holding_priority_9_jobs_recovers_them_on_their_level(
        start_master: Callable[..., subprocess.Popen[bytes]], client: redis.Redis) -> None:
    backlog("pq", 20_000)  # low-priority work all along
    node = start_master("--workers", "1", "--queues", "pq", tasks="priority_tasks")
    wait_until(lambda: client.llen("t:order") >= 300, timeout=60, what="the backlog runs")
    held = [pt.hold.delay(f"h{n}") for n in range(4)]  # priority 9: the task's own
    wait_until(lambda: client.llen("t:pids") >= 1, timeout=30, what="a priority-9 job runs")
    (child,) = set(client.lrange("t:pids", 0, -1))
    # The child runs h0 and holds the others of its batch (the next fetch reads level 9
    # first): all four go down with it.
    os.kill(int(child), signal.SIGKILL)
    client.set("t:release", 1)
    assert [result.get(timeout=60) for result in held] == [f"h{n}" for n in range(4)]
    assert client.hgetall("t:ends") == {f"h{n}": "1" for n in range(4)}  # none lost
    starts = Counter(item for item in order(client) if item.startswith("pq:h"))
    assert starts["pq:h0"] == 2  # killed mid-run, run again
    # Recovered onto level 9, not behind the backlog: thousands of low jobs still wait.
    assert client.xlen(keys.stream("pq")) > 5_000
    assert client.xlen(keys.level_stream("pq", 9)) == 0
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
