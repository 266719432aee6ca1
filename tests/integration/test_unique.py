"""Unique jobs against the private Redis: one job per key while it lives, the lock released
in the step that ends it (success, dead letter, or a cancel before it starts), kept by a
job whose child or whole node was SIGKILLed until the recovered job ends."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import limit_tasks
import psutil
import pytest
import redis
from helpers import wait_until
from node_process import Node

from supervisor import aenqueue_many, enqueue_many
from supervisor.api.control import cancel
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")

HERE = Path(__file__).resolve().parent
HEARTBEAT = 2.0  # the nodes' --heartbeat-timeout


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def records(client: redis.Redis, queue: str = "default") -> list[str]:
    return list(client.scan_iter(match=keys.job_prefix(queue) + "*", count=1000))


def locks(client: redis.Redis, queue: str = "default") -> list[str]:
    return list(client.scan_iter(match=keys.unique(queue, "*"), count=1000))


def test_a_thousand_concurrent_enqueues_of_one_key_make_exactly_one_job(
        client: redis.Redis) -> None:
    ids: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def enqueue() -> None:
        start.wait()
        mine = [limit_tasks.report.delay("2026-12-01").id for _ in range(125)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 1000
    assert len(set(ids)) == 1  # every caller got the one job's handle
    assert client.xlen(keys.stream("default")) == 1
    assert records(client) == [keys.job("default", ids[0])]
    assert client.get(locks(client)[0]) == ids[0]
    # Other arguments are another job; kwargs order does not matter for equality.
    other = limit_tasks.report.delay("2026-12-02")
    assert other.id != ids[0]
    assert limit_tasks.sync_account.delay("a", note="x").id == \
        limit_tasks.sync_account.delay("a", note="y").id  # unique_key: by account only


def test_enqueue_many_the_async_producer_and_apply_async_share_the_lock(
        client: redis.Redis) -> None:
    first = limit_tasks.report.apply_async(("d",), countdown=60)  # scheduled holds it too
    many = enqueue_many([limit_tasks.report.s("d"), limit_tasks.report.s("e"),
                         limit_tasks.report.s("e")])
    assert many[0].id == first.id
    assert many[1].id == many[2].id != first.id  # equal jobs within one batch: one job
    async def from_asyncio() -> list[str]:
        one = await limit_tasks.report.adelay("d")
        more = await aenqueue_many([limit_tasks.report.s("e"), limit_tasks.report.s("f")])
        return [one.id, *(result.id for result in more)]

    one, e, f = asyncio.run(from_asyncio())
    assert (one, e) == (first.id, many[1].id)
    assert f not in (first.id, many[1].id)
    assert len(records(client)) == 3  # d, e, f
    # Another queue is another lock (the lock lives in the queue's slot).
    elsewhere = limit_tasks.report.apply_async(("d",), queue="other")
    assert elsewhere.id != first.id


def test_the_lock_is_released_when_the_job_ends_and_when_it_is_cancelled(
        client: redis.Redis, start_worker: Callable[..., Any]) -> None:
    first = limit_tasks.report.delay("x")
    expired = limit_tasks.report.apply_async(("z",), expires=0.2)
    cancelled = limit_tasks.report.apply_async(("y",), countdown=600)
    assert limit_tasks.report.delay("y").id == cancelled.id
    cancel([cancelled.id])  # scheduled, not held: it will never start, so the lock goes now
    again = limit_tasks.report.delay("y")
    assert again.id != cancelled.id
    wait_until(lambda: time.time() > expired.info()["created"] + 0.3, what="z expires")
    start_worker(tasks="limit_tasks")
    assert first.get(timeout=20) == "x"
    assert again.get(timeout=20) == "y"
    wait_until(lambda: not locks(client), timeout=10, what="locks released on settle")
    after = limit_tasks.report.delay("x")
    assert after.id != first.id  # settled: the next enqueue makes a new job
    assert after.get(timeout=20) == "x"
    wait_until(lambda: expired.state == "cancelled", timeout=20, what="z dropped, expired")
    assert limit_tasks.report.delay("z").id != expired.id  # expiry released its lock
    retried = limit_tasks.retried_unique.delay(1)
    wait_until(lambda: retried.state == "retrying", timeout=20, what="its retry is scheduled")
    assert limit_tasks.retried_unique.delay(1).id == retried.id  # a retry keeps the lock
    cancel([retried.id])
    assert limit_tasks.retried_unique.delay(1).id != retried.id


def test_unique_for_bounds_the_lock(client: redis.Redis) -> None:
    first = limit_tasks.briefly_unique.delay(1)
    assert limit_tasks.briefly_unique.delay(1).id == first.id
    assert 0 < client.ttl(locks(client)[0]) <= 1
    wait_until(lambda: not locks(client), timeout=5, what="the lock's unique_for passes")
    assert limit_tasks.briefly_unique.delay(1).id != first.id  # queued still, but unlocked


def test_a_killed_childs_job_keeps_its_lock_until_the_recovered_job_ends(
        client: redis.Redis, start_master: Callable[..., Any]) -> None:
    held = limit_tasks.held_unique.delay(60.0)
    master = start_master("--workers", "1", "--queues", "capped", tasks="limit_tasks")
    wait_until(lambda: client.get("t:held-once"), timeout=30, what="the job runs")
    child = psutil.Process(master.pid).children()[0]
    os.kill(child.pid, signal.SIGKILL)
    # Recovered (handed back), then run again by the new child: the lock stays the
    # job's meanwhile, so an equal enqueue gets the same job.
    assert limit_tasks.held_unique.delay(60.0).id == held.id
    wait_until(lambda: client.get("t:held-again"), timeout=30, what="the job runs again")
    assert limit_tasks.held_unique.delay(60.0).id == held.id
    client.set("t:release", 1)
    assert held.get(timeout=30) == "done"
    wait_until(lambda: not locks(client, "capped"), timeout=10, what="lock released")
    info = held.info()
    assert any(entry.get("outcome") == "worker died" for entry in info["attempts"])
    assert limit_tasks.held_unique.delay(60.0).id != held.id


def test_the_lock_is_released_when_the_job_ends_in_the_dead_letter_queue(
        client: redis.Redis, start_worker: Callable[..., Any]) -> None:
    doomed = limit_tasks.doomed_unique.delay(1)
    assert limit_tasks.doomed_unique.delay(1).id == doomed.id  # queued: the lock holds
    start_worker(tasks="limit_tasks")
    wait_until(lambda: client.xlen(keys.dead("default")) == 1, timeout=30,
               what="the job is dead-lettered after its two attempts")
    assert client.llen("t:doomed") == 2  # its retry kept the lock: no second job ran
    assert doomed.state == "failed"
    # Released in the step that wrote the dead letter (settle.lua), not by its TTL.
    assert not locks(client)
    again = limit_tasks.doomed_unique.delay(1)
    assert again.id != doomed.id


@pytest.fixture
def nodes(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    made: list[Node] = []

    def make(name: str) -> Node:
        node = Node(name, workers=1, redis_url=redis_url, log_dir=tmp_path,
                    heartbeat_timeout=HEARTBEAT, result_ttl=600, tasks="limit_tasks",
                    cwd=HERE, queues="capped")
        made.append(node)
        node.start()
        node.wait_ready(timeout=60)
        return node

    yield make
    for node in made:
        node.terminate(timeout=20)
        node.reap_group()


def test_a_killed_nodes_job_keeps_its_lock_until_the_recovered_job_ends(
        client: redis.Redis, nodes: Callable[..., Node]) -> None:
    first = nodes("first")
    held = limit_tasks.held_unique.delay(60.0)
    wait_until(lambda: client.get("t:held-once"), timeout=30, what="the job runs on first")
    nodes("second")
    first.kill_group()  # the master and its child at once: no one hands the job back
    # Until the second node finds the first dead (its heartbeat expires) and recovers
    # the job, and while the recovered job runs, the lock stays the job's.
    assert limit_tasks.held_unique.delay(60.0).id == held.id
    wait_until(lambda: client.get("t:held-again"), timeout=HEARTBEAT + 30,
               what="the second node recovers the job and runs it")
    assert limit_tasks.held_unique.delay(60.0).id == held.id
    client.set("t:release", 1)
    assert held.get(timeout=30) == "done"
    wait_until(lambda: not locks(client, "capped"), timeout=10, what="lock released")
    info = held.info()
    died = [entry for entry in info["attempts"] if entry.get("outcome") == "worker died"]
    assert died and died[0]["worker"].startswith("first")  # its first run, on the killed node
    last = info["attempts"][-1]  # recovered and run by the other node
    assert last["outcome"] == "succeeded" and last["worker"].startswith("second")
    assert limit_tasks.held_unique.delay(60.0).id != held.id
