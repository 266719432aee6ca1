"""Control over jobs on real workers and a real Redis: cancel before start (queued,
scheduled, across restarts of nodes and of Redis), expiry, pause and resume."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import control_tasks as ct
import pytest
import redis
from helpers import wait_until

from supervisor import JobCancelled
from supervisor.api import control
from supervisor.api.result import AsyncResult
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")

Master = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def runs(client: redis.Redis, job_id: str) -> int:
    return int(client.hget("t:runs", job_id) or 0)


def stop(*nodes: subprocess.Popen[bytes]) -> None:
    for node in nodes:
        node.send_signal(signal.SIGTERM)
    for node in nodes:
        assert node.wait(timeout=30) == 0


def test_cancelled_queued_and_delayed_jobs_never_run_across_restarts_of_nodes_and_redis(
        start_master: Master, client: redis.Redis, redis_server: object) -> None:
    queued = [ct.count.delay(n) for n in range(100)]
    delayed = [ct.count.apply_async((n,), countdown=2) for n in range(100)]
    kept = [ct.count.delay(n) for n in range(20)]  # neighbours: not cancelled, they run
    replies = control.cancel([r.id for r in queued + delayed], by="tester")
    assert {reply.what for reply in replies} == {"cancelled"}
    assert all(r.state == "cancelled" for r in queued + delayed)
    nodes = [start_master("--workers", "2", "--node-name", f"n{i}", tasks="control_tasks")
             for i in range(2)]
    assert [r.get(timeout=30) for r in kept] == list(range(20))
    # Restart every node and Redis (its append-only file keeps the cancels).
    stop(*nodes)
    redis_server.kill()  # type: ignore[attr-defined]
    redis_server.start()  # type: ignore[attr-defined]
    nodes = [start_master("--workers", "2", "--concurrency", "4", "--node-name", f"n{i}",
                          tasks="control_tasks") for i in range(2)]
    after = [ct.count.delay(n) for n in range(20)]
    assert [r.get(timeout=30) for r in after] == list(range(20))
    # The delayed ones came due meanwhile: every job of the queue is settled.
    wait_until(lambda: client.zcard(keys.delayed("default")) == 0
               and client.xlen(keys.stream("default")) == 0, timeout=30,
               what="the cancelled entries acknowledged")
    assert all(runs(client, r.id) == 0 for r in queued + delayed)
    for result in queued + delayed:
        assert result.state == "cancelled"
        with pytest.raises(JobCancelled, match="cancelled by tester at"):
            result.get(timeout=1)
    assert client.scard(keys.cancels("default")) == 0  # nothing left for workers to skip
    stop(*nodes)


def test_cancelling_an_ended_job_is_a_no_op_that_reports_its_final_state(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", tasks="control_tasks")
    done = ct.count.delay(7)
    assert done.get(timeout=30) == 7
    reply = done.cancel(by="late")
    assert (reply.what, reply.state) == ("ended", "succeeded")
    assert done.get(timeout=1) == 7  # untouched
    assert control.cancel(["no-such-job"])[0].what == "unknown"
    stop(node)


def test_cancel_many_by_task_spares_other_tasks(client: redis.Redis,
                                                 start_master: Master) -> None:
    doomed = [ct.count.delay(n) for n in range(10)]
    spared = [ct.brief.delay(n, 0.0) for n in range(10)]
    replies = control.cancel_many(task=ct.count.name, by="bulk")
    assert sorted(reply.job_id for reply in replies) == sorted(r.id for r in doomed)
    node = start_master("--workers", "1", tasks="control_tasks")
    assert [r.get(timeout=30) for r in spared] == list(range(10))
    wait_until(lambda: client.xlen(keys.stream("default")) == 0, timeout=30)
    assert all(r.state == "cancelled" and runs(client, r.id) == 0 for r in doomed)
    stop(node)


def test_expired_jobs_do_not_run_and_read_cancelled_with_reason_expired(
        start_master: Master, client: redis.Redis) -> None:
    expiring = [ct.count.apply_async((n,), expires=0.2) for n in range(5)]
    by_default = [ct.short_lived.delay(n) for n in range(5)]  # the task's expires=0.5
    fresh = [ct.count.apply_async((n,), expires=3600) for n in range(5)]
    wait_until(lambda: time.time() > max(r.info()["created"] for r in by_default) + 0.6,
               what="the jobs past their expiry")
    node = start_master("--workers", "1", tasks="control_tasks")
    assert [r.get(timeout=30) for r in fresh] == list(range(5))
    for result in expiring + by_default:
        with pytest.raises(JobCancelled, match="expired"):
            result.get(timeout=30)
        assert result.info()["cancelled"]["reason"] == "expired"
        assert runs(client, result.id) == 0
    stop(node)


def test_a_paused_queue_stops_on_two_nodes_and_resumes_without_loss(
        start_master: Master, client: redis.Redis) -> None:
    nodes = [start_master("--workers", "2", "--node-name", f"n{i}", tasks="control_tasks")
             for i in range(2)]
    warm = [ct.count.delay(n) for n in range(4)]
    assert [r.get(timeout=30) for r in warm] == list(range(4))
    control.pause("default", by="ops")
    assert "default" in control.paused()
    # Every worker reads pauses twice a second: once each has, none takes a job.
    # A job enqueued now is proof: it waits (checked over several read periods).
    time.sleep(1.5)  # let every worker see the pause (not a synchronisation: a bound)
    held = [ct.count.delay(n) for n in range(50)]
    waited = time.monotonic() + 2.0
    while time.monotonic() < waited:
        assert all(runs(client, r.id) == 0 for r in held)
        assert all(r.state == "queued" for r in held[:3])
        time.sleep(0.1)
    assert control.resume("default")
    assert [r.get(timeout=30) for r in held] == list(range(50))
    assert all(runs(client, r.id) == 1 for r in held)
    assert not control.paused()
    stop(*nodes)
