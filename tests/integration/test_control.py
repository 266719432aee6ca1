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
from supervisor.broker import keys
from supervisor.broker.nodes import cluster_status

pytestmark = pytest.mark.usefixtures("producer")

Master = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def runs(client: redis.Redis, job_id: str) -> int:
    return int(client.hget("t:runs", job_id) or 0)


def serving(*nodes: subprocess.Popen[bytes], workers: int = 2) -> None:
    """Wait until every worker of each node has booted (said what it consumes)."""
    for node in nodes:
        wait_until(lambda node=node: node.log_path.read_text().count(  # type: ignore[misc]
            " consuming ") >= workers, timeout=30, what="the node's workers booted")


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
    serving(*nodes)
    # Restart every node and Redis (its append-only file keeps the cancels).
    stop(*nodes)
    redis_server.kill()  # type: ignore[attr-defined]
    redis_server.start()  # type: ignore[attr-defined]
    nodes = [start_master("--workers", "2", "--concurrency", "4", "--node-name", f"n{i}",
                          tasks="control_tasks") for i in range(2)]
    serving(*nodes)
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
    assert client.hlen(keys.cancels("default")) == 0  # nothing left for workers to skip
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


def test_a_cancel_stops_the_job_of_its_queue_only_when_an_id_is_in_two_queues(
        start_master: Master, client: redis.Redis) -> None:
    # Explicit job ids repeat across queues (two jobs); one worker reads both queues.
    # Keyed by the id alone, the cancel of one stopped whichever came first.
    for _ in range(3):  # both fetch orders get their chance
        client.delete("t:runs:by-queue")
        doomed = ct.count_in_queue.apply_async((1,), queue="qa", job_id="same-id")
        kept = ct.count_in_queue.apply_async((2,), queue="qb", job_id="same-id")
        assert control.cancel(["same-id"], queue="qa")[0].what == "cancelled"
        node = start_master("--workers", "1", "--queues", "qb,qa", tasks="control_tasks")
        assert kept.get(timeout=30) == 2
        wait_until(lambda: client.xlen(keys.stream("qa")) == 0, timeout=30,
                   what="the cancelled job acknowledged")
        assert doomed.state == "cancelled"
        assert client.hgetall("t:runs:by-queue") == {"qb same-id": "1"}
        stop(node)
        client.delete(keys.job("qa", "same-id"), keys.job("qb", "same-id"))


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
    # Every worker reads pauses twice a second and says so when they change: once all
    # four have, none takes a job; one enqueued now waits (checked over several periods).
    wait_until(lambda: all(node.log_path.read_text().count(  # type: ignore[attr-defined]
        "queues paused now: default") == 2 for node in nodes), timeout=5,
        what="every worker of both nodes saw the pause within a second or so")
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


def started_pid(client: redis.Redis, job_id: str) -> int:
    return int(client.get(f"t:started:{job_id}") or 0)


@pytest.mark.parametrize(("concurrency", "kind"), [("1", "sync"), ("8", "sync"),
                                                   ("8", "async"), ("1", "async")])
def test_cancelled_running_jobs_stop_run_their_finally_and_spare_their_neighbours(
        start_master: Master, client: redis.Redis, concurrency: str, kind: str) -> None:
    workers = "10" if concurrency == "1" else "2"  # room for 10 running jobs either way
    node = start_master("--workers", workers, "--concurrency", concurrency,
                        tasks="control_tasks")
    long_task = ct.long_sync if kind == "sync" else ct.long_async
    doomed = [long_task.delay(60) for _ in range(10)]
    neighbours = [ct.brief.delay(n, 0.5) for n in range(8)]
    wait_until(lambda: all(started_pid(client, r.id) for r in doomed), timeout=30,
               what="every long job running")
    for result in doomed:
        assert result.state == "started"
        assert result.cancel(by="tester").what == "running"
    for result in doomed:
        with pytest.raises(JobCancelled, match="cancelled by tester"):
            result.get(timeout=15)  # well within the 5 s grace: no kill needed
        assert client.get(f"t:finally:{result.id}") == "1"
        assert result.info()["attempts"][-1]["outcome"] == "cancelled"
    assert [r.get(timeout=30) for r in neighbours] == list(range(8))
    assert all(runs(client, r.id) == 1 for r in neighbours)
    # Nobody was killed: the first children still run.
    assert "killing worker" not in node.log_path.read_text()  # type: ignore[attr-defined]
    stop(node)


def test_a_job_swallowing_its_cancel_is_killed_after_the_grace_and_its_neighbours_recovered(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "8", "--cancel-grace", "1",
                        tasks="control_tasks")
    stubborn = ct.stubborn.delay(60)
    neighbours = [ct.long_sync.delay(3) for _ in range(4)]
    wait_until(lambda: started_pid(client, stubborn.id)
               and all(started_pid(client, r.id) for r in neighbours), timeout=30,
               what="the stubborn job and its neighbours running")
    pid = started_pid(client, stubborn.id)
    assert stubborn.cancel(by="tester").what == "running"
    with pytest.raises(JobCancelled, match="cancelled by tester"):
        stubborn.get(timeout=60)
    assert client.get(f"t:swallowed:{stubborn.id}") == "1"  # it did see JobCancelled
    assert "killing worker" in node.log_path.read_text()  # type: ignore[attr-defined]
    # Its neighbours were in the killed child: recovered and run to their end.
    assert [r.get(timeout=90) for r in neighbours] == ["done"] * 4
    assert all(started_pid(client, r.id) != pid for r in neighbours)  # re-run elsewhere
    wait_until(lambda: client.xlen(keys.stream("default")) == 0, timeout=30)
    assert stubborn.state == "cancelled"
    stop(node)


def set_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


def test_progress_is_visible_while_a_job_runs_and_after_it_ends_written_coalesced(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "2", tasks="control_tasks")
    warm = ct.count.delay(0)
    assert warm.get(timeout=30) == 0
    before = set_calls(client)
    result = ct.reporting.delay(100_000)
    wait_until(lambda: started_pid(client, result.id), timeout=30, what="the job reported")
    seen = wait_until(lambda: result.progress, timeout=10, what="its progress visible")
    assert seen["value"] == 1.0 and seen["meta"] == {"step": 100_000}
    # 100,000 reports, a handful of writes (heartbeats and node states are SETs too).
    assert set_calls(client) - before < 100

    def shown_in_status() -> bool:
        doc = cluster_status(client)
        jobs = [job for node in doc["nodes"] for worker in node.get("workers", [])
                for job in [worker, *(worker.get("jobs") or [])]]
        return any(job.get("job_id") == result.id and job.get("progress", {}).get("value")
                   == 1.0 for job in jobs)

    wait_until(shown_in_status, timeout=15, what="status --json shows the job's progress")
    client.set(f"t:go:{result.id}", "1")
    assert result.get(timeout=30) == 100_000
    assert result.info()["progress"]["meta"] == {"step": "done"}  # kept in the record
    assert result.progress["meta"] == {"step": "done"}  # type: ignore[index]
    stop(node)


def test_on_cancel_fires_for_a_job_stopped_by_its_cancel(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "4", "--middleware",
                        "control_hooks:Record", tasks="control_tasks")
    doomed = ct.long_sync.delay(60)
    wait_until(lambda: started_pid(client, doomed.id), timeout=30, what="the job running")
    assert doomed.cancel(by="tester").what == "running"
    with pytest.raises(JobCancelled):
        doomed.get(timeout=15)
    wait_until(lambda: client.lrange("t:on_cancel", 0, -1), timeout=10, what="on_cancel ran")
    assert client.lrange("t:on_cancel", 0, -1) == [f"{doomed.id} JobCancelled"]
    assert f"{doomed.id} cancelled" in client.lrange("t:after_attempt", 0, -1)
    stop(node)
