"""Real faults on the worker: SIGTERM mid-job, SIGKILL mid-job, a Redis restart."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import sample_tasks
from helpers import wait_until
from redis_server import RedisServer

from supervisor.broker.inspect import queue_stats

pytestmark = pytest.mark.usefixtures("producer")


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def started(client: redis.Redis, ids: list[str]) -> list[str]:
    return [job_id for job_id in ids if client.exists(f"t:starts:{job_id}")]


def test_sigterm_mid_job_finishes_it_and_loses_nothing(start_worker: Callable[..., Any],
                                                       client: redis.Redis) -> None:
    ids = [sample_tasks.slow.delay(0.6).id for _ in range(5)]
    worker: subprocess.Popen[bytes] = start_worker()
    wait_until(lambda: started(client, ids), what="a job started")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    runs = client.hgetall("t:runs")
    assert len(runs) >= 1 and set(runs.values()) == {"1"}  # the running job finished
    stats = queue_stats(client, "default")
    assert stats.running == 0  # fetched-but-unstarted jobs went back
    assert stats.waiting == len(ids) - len(runs)
    start_worker()
    wait_until(lambda: client.hlen("t:runs") == len(ids), timeout=20, what="all jobs ran")
    assert set(client.hgetall("t:runs").values()) == {"1"}  # none twice


def test_sigkill_mid_job_is_recovered_by_a_live_peer(start_worker: Callable[..., Any],
                                                     client: redis.Redis) -> None:
    first = start_worker()
    second = start_worker()
    result = sample_tasks.slow.delay(1.5)
    wait_until(lambda: started(client, [result.id]), what="job started")
    holder = wait_until(lambda: result.info().get("worker"), what="job held by a worker")
    pid = int(str(holder).split("/")[1])
    victim = first if first.pid == pid else second
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert result.get(timeout=20) == "done"
    assert len(client.lrange(f"t:starts:{result.id}", 0, -1)) == 2
    record = result.info()
    assert record["attempt"] == 1  # a crash is not a retry
    # The killed attempt stays in the record; the live peer finished the job.
    assert [entry["outcome"] for entry in record["attempts"]] == ["worker died", "succeeded"]
    assert record["attempts"][0]["worker"] == holder
    assert record["attempts"][-1]["worker"] != holder


def test_redis_restart_under_load_loses_nothing(start_worker: Callable[..., Any],
                                                tmp_path: Path) -> None:
    import supervisor.api.producer as producer_module

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        producer_module.configure(redis_url=server.url)
        local = redis.Redis.from_url(server.url, decode_responses=True)
        ids = [sample_tasks.count_run.delay().id for _ in range(300)]
        start_worker(url=server.url)
        wait_until(lambda: local.hlen("t:runs") >= 30, timeout=20, what="some jobs ran")
        server.kill()
        server.start()  # same port, same append-only file
        more = [sample_tasks.count_run.delay().id for _ in range(100)]
        wait_until(lambda: local.hlen("t:runs") == len(ids) + len(more), timeout=60,
                   interval=0.1, what="every job ran after the restart")
        runs = local.hgetall("t:runs")
        assert set(runs) == set(ids) | set(more)
    finally:
        server.stop()


def test_jobs_behind_a_slow_one_are_not_held_hostage(start_worker: Callable[..., Any],
                                                     client: redis.Redis) -> None:
    from supervisor import enqueue_many

    start_worker()  # A: learns that `slow` is slow and that `quick` is fast (big batches)
    assert sample_tasks.slow.delay(0.3).get(timeout=15) == "done"
    for warm in enqueue_many(sample_tasks.quick.s() for _ in range(300)):
        warm.get(timeout=30)
    second = start_worker()  # B: idle, fetches one at a time
    # A consumer appears in XINFO only once it got data: wait for both to block in a fetch.
    wait_until(lambda: sum(c["cmd"] == "xreadgroup" and "b" in c["flags"]
                           for c in client.client_list()) == 2, what="A and B wait for jobs")
    batch = enqueue_many([sample_tasks.slow.s(2.0)] + [sample_tasks.quick.s() for _ in range(40)])
    slow_record = batch[0]
    assert slow_record.get(timeout=20) == "done"
    finished = [result.info()["attempts"][-1]["finished"] for result in batch[1:]
                if result.get(timeout=20) == "ok"]
    assert len(finished) == 40
    assert max(finished) < slow_record.info()["attempts"][-1]["finished"]
    assert second.poll() is None


def test_entries_pending_for_a_live_worker_it_never_saw_still_run(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    worker = start_worker()
    assert sample_tasks.echo.delay("warm").get(timeout=15) == ["warm", None]
    [holder] = [c["name"] for c in client.xinfo_consumers("sv:{default}:stream", "workers")]
    worker.send_signal(signal.SIGSTOP)
    try:
        # As if a claim's reply had been lost: the entry is pending for the
        # worker, which was never told.
        orphan = sample_tasks.echo.delay("orphan")
        client.xreadgroup("workers", holder, {"sv:{default}:stream": ">"})
        assert client.xpending("sv:{default}:stream", "workers")["pending"] == 1
    finally:
        worker.send_signal(signal.SIGCONT)
    assert orphan.get(timeout=10) == ["orphan", None]
    wait_until(lambda: client.xpending("sv:{default}:stream", "workers")["pending"] == 0,
               what="nothing left pending")
