"""--concurrency K: many jobs in flight per child, sync on threads and async on a loop.

Real masters, real children, real signals: each job runs once, every guarantee
holds per job (results, timeouts, poison pills, stopping), and jobs really
overlap (the peak of jobs running at once, recorded by the tasks themselves).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import concurrent_tasks as ct
import pytest
import redis
from helpers import wait_until

from supervisor import TaskFailed
from supervisor.api.result import AsyncResult
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")

Master = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def runs(client: redis.Redis, job_id: str) -> int:
    return int(client.hget("t:runs", job_id) or 0)


def started(client: redis.Redis, job_id: str) -> int:
    return int(client.llen(f"t:starts:{job_id}"))


def children(master: subprocess.Popen[bytes]) -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process(master.pid).children()}


def test_sync_and_async_jobs_at_k16_give_right_results_each_once(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "2", "--concurrency", "16", tasks="concurrent_tasks")
    sync = [ct.sync_job.delay(n, 0.05) for n in range(150)]
    asynchronous = [ct.async_job.delay(n, 0.05) for n in range(150)]
    assert [r.get(timeout=60) for r in sync] == [n * 2 for n in range(150)]
    assert [r.get(timeout=60) for r in asynchronous] == [n * 3 for n in range(150)]
    assert all(runs(client, r.id) == 1 for r in sync + asynchronous)
    assert int(client.get("t:peak") or 0) > 2  # jobs really ran side by side
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def test_soft_timeouts_of_a_thread_job_and_an_async_job_spare_their_neighbours(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "8", tasks="concurrent_tasks")
    wait_until(lambda: children(node), what="the child is up")
    (child,) = children(node)
    overrun_sync = ct.sync_overruns.delay()
    overrun_async = ct.async_overruns.delay()
    neighbours = [ct.sync_job.delay(n, 2.0) for n in range(3)] + \
                 [ct.async_job.delay(n, 2.0) for n in range(3)]
    for overrun in (overrun_sync, overrun_async):
        with pytest.raises(TaskFailed) as failure:
            overrun.get(timeout=30)
        assert failure.value.reason == "timeout"
    values = [r.get(timeout=30) for r in neighbours]
    assert values == [0, 2, 4, 0, 3, 6]
    assert all(runs(client, r.id) == 1 for r in neighbours)
    assert children(node) == {child}  # the soft timeouts did it: nobody was killed
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def test_one_poison_pill_among_15_good_jobs_is_dead_lettered_alone(
        start_master: Master, client: redis.Redis) -> None:
    # One child, the good jobs running before the pill comes: its first run is then
    # beside them for sure. (With two children and the pill enqueued first, the other
    # child sometimes took all 15 good jobs, the pill's first crash was alone and
    # counted, and it ran twice, not three times.)
    node = start_master("--workers", "1", "--concurrency", "16", "--max-crashes", "2",
                        tasks="concurrent_tasks")
    wait_until(lambda: len(children(node)) == 1, what="the child is up")
    good = [ct.sync_job.delay(n, 1.0) for n in range(8)] + \
           [ct.async_job.delay(n, 1.0) for n in range(7)]
    wait_until(lambda: sum(started(client, r.id) for r in good) == len(good), timeout=30,
               what="the good jobs running")
    pill = ct.pill.delay(0.2)  # it dies long before they end (they run 1 s)
    with pytest.raises(TaskFailed) as failure:
        pill.get(timeout=90)
    assert failure.value.reason == "crashed"
    # Every good job succeeds, none dead-lettered, though they shared a child with the pill.
    assert [r.get(timeout=60) for r in good] == [n * 2 for n in range(8)] + \
        [n * 3 for n in range(7)]
    # The pill killed a worker while running beside good jobs (not counted), then
    # ran alone twice (counted) before it was dead-lettered.
    assert started(client, pill.id) >= 3
    letters = [json.loads(f["m"]) for _, f in client.xrange(keys.dead("default"))]
    assert [(letter["id"], letter["reason"]) for letter in letters] == [(pill.id, "crashed")]
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def test_sigkill_of_a_child_holding_16_jobs_reruns_them_all(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "16", tasks="concurrent_tasks")
    jobs = [ct.sync_job.delay(n, 1.0) for n in range(8)] + \
           [ct.async_job.delay(n, 1.0) for n in range(8)]
    wait_until(lambda: all(started(client, r.id) == 1 for r in jobs), timeout=20,
               what="the child runs all 16 jobs at once")
    (child,) = {int(pid) for pid in client.lrange("t:pids", 0, -1)}
    os.kill(child, signal.SIGKILL)
    assert [r.get(timeout=60) for r in jobs] == [n * 2 for n in range(8)] + \
        [n * 3 for n in range(8)]
    assert all(runs(client, r.id) == 1 for r in jobs)  # killed mid-run: one finished run each
    assert all(started(client, r.id) == 2 for r in jobs)
    # None of them was blamed: they ran beside each other when the child died.
    assert client.xlen(keys.dead("default")) == 0
    assert all("beside others" in json.dumps(r.info()) for r in jobs)
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def shown_jobs(redis_url: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json",
                          "--redis-url", redis_url], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return {job["job_id"] for node in doc["nodes"] for worker in node["workers"]
            for job in worker["jobs"]}


def test_term_with_16_jobs_in_flight_lets_them_all_finish(
        start_master: Master, client: redis.Redis, redis_url: str) -> None:
    node = start_master("--workers", "1", "--concurrency", "16", tasks="concurrent_tasks")
    jobs: list[AsyncResult[int]] = [ct.sync_job.delay(n, 4.0) for n in range(8)] + \
        [ct.async_job.delay(n, 4.0) for n in range(8)]
    wait_until(lambda: all(started(client, r.id) == 1 for r in jobs), timeout=20,
               what="the child runs all 16 jobs at once")
    # `status --json` shows every job the worker runs, not one.
    shown = wait_until(lambda: shown_jobs(redis_url) == {r.id for r in jobs}, timeout=10,
                       what="status shows the 16 jobs")
    assert shown
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
    assert [r.get(timeout=5) for r in jobs] == [n * 2 for n in range(8)] + \
        [n * 3 for n in range(8)]
    assert all(runs(client, r.id) == 1 for r in jobs)


def test_async_def_tasks_run_one_at_a_time_at_concurrency_1_too(
        start_worker: Callable[..., subprocess.Popen[bytes]], client: redis.Redis) -> None:
    start_worker(tasks="concurrent_tasks")  # `supervisor worker`, default --concurrency 1
    jobs = [ct.async_job.delay(n, 0.01) for n in range(5)]
    assert [r.get(timeout=30) for r in jobs] == [n * 3 for n in range(5)]
    overrun = ct.async_overruns.delay()
    with pytest.raises(TaskFailed) as failure:
        overrun.get(timeout=30)
    assert failure.value.reason == "timeout"
    after = ct.sync_job.delay(7, 0.01)  # the worker goes on
    assert after.get(timeout=30) == 14
    assert int(client.get("t:peak") or 0) == 1


def test_an_async_task_that_blocks_the_loop_is_named_in_the_log(start_master: Master) -> None:
    node = start_master("--workers", "1", "--concurrency", "4", tasks="concurrent_tasks")
    blocker = ct.blocks_loop.delay(1.0)
    assert blocker.get(timeout=30) == "blocked"
    log_path = node.log_path  # type: ignore[attr-defined]
    wait_until(lambda: "event loop blocked" in log_path.read_text(), timeout=10,
               what="the stall is logged")
    line = next(line for line in log_path.read_text().splitlines()
                if "event loop blocked" in line)
    assert f"concurrent_tasks.blocks_loop[{blocker.id}]" in line


def test_recycling_and_a_reload_with_jobs_in_flight_lose_and_repeat_nothing(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "8", "--max-jobs-per-child", "25",
                        tasks="concurrent_tasks")
    first = [ct.sync_job.delay(n, 0.05) for n in range(60)] + \
        [ct.async_job.delay(n, 0.05) for n in range(60)]
    wait_until(lambda: int(client.hlen("t:runs")) >= 30, timeout=30, what="jobs flow")
    node.send_signal(signal.SIGHUP)  # a new generation; the old one finishes what it runs
    second = [ct.sync_job.delay(n, 0.05) for n in range(60, 100)]
    values = [r.get(timeout=60) for r in first + second]
    assert values == [n * 2 for n in range(60)] + [n * 3 for n in range(60)] + \
        [n * 2 for n in range(60, 100)]
    assert all(runs(client, r.id) == 1 for r in first + second)  # no loss, no repeat
    assert all(started(client, r.id) == 1 for r in first + second)
    assert len(set(client.lrange("t:pids", 0, -1))) >= 4  # children recycled (25 jobs each)
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def test_quit_with_jobs_in_flight_hands_them_all_back_marked_interrupted(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "8", tasks="concurrent_tasks")
    jobs = [ct.sync_job.delay(n, 5.0) for n in range(4)] + \
        [ct.async_job.delay(n, 5.0) for n in range(4)]
    wait_until(lambda: all(started(client, r.id) == 1 for r in jobs), timeout=20,
               what="the child runs all 8 jobs at once")
    node.send_signal(signal.SIGQUIT)
    node.wait(timeout=30)
    assert all(runs(client, r.id) == 0 for r in jobs)  # none finished: all went back
    assert all("interrupted" in json.dumps(r.info()) for r in jobs)
    start_master("--workers", "1", "--concurrency", "8", tasks="concurrent_tasks")
    assert [r.get(timeout=30) for r in jobs] == [n * 2 for n in range(4)] + \
        [n * 3 for n in range(4)]
    assert all(runs(client, r.id) == 1 for r in jobs)


def test_a_job_ignoring_its_soft_timeout_meets_the_hard_limit_and_its_neighbours_rerun(
        start_master: Master, client: redis.Redis) -> None:
    node = start_master("--workers", "1", "--concurrency", "8", tasks="concurrent_tasks")
    stubborn = ct.ignores_timeout.delay()
    neighbours = [ct.sync_job.delay(n, 6.0) for n in range(3)] + \
        [ct.async_job.delay(n, 6.0) for n in range(3)]
    with pytest.raises(TaskFailed) as failure:
        stubborn.get(timeout=60)
    assert failure.value.reason == "timeout"  # the master killed the child for it
    assert [r.get(timeout=90) for r in neighbours] == [0, 2, 4, 0, 3, 6]
    assert all(runs(client, r.id) == 1 for r in neighbours)  # recovered, run again, once
    assert all(started(client, r.id) == 2 for r in neighbours)
    assert client.xlen(keys.dead("default")) == 1  # the stubborn one only (timeout)
    # The cause of the kill is known: its neighbours were no suspects (they ran again
    # side by side, not alone), and their timelines say why they went back.
    assert all(f"job {stubborn.id} ran past its time limit" in json.dumps(r.info())
               for r in neighbours)
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0


def test_bad_messages_are_dead_lettered_while_neighbours_run(
        start_master: Master, client: redis.Redis) -> None:
    start_master("--workers", "1", "--concurrency", "8", tasks="concurrent_tasks")
    jobs = [ct.sync_job.delay(n, 0.5) for n in range(4)]
    client.xadd(keys.stream("default"), {"m": "not a job"})
    wait_until(lambda: client.xlen(keys.dead("default")) == 1, timeout=20,
               what="the bad message is dead-lettered")
    letters = [json.loads(f["m"]) for _, f in client.xrange(keys.dead("default"))]
    assert [letter["reason"] for letter in letters] == ["invalid"]
    assert [r.get(timeout=30) for r in jobs] == [0, 2, 4, 6]


@pytest.mark.parametrize("task_name", ["step", "astep"])
def test_tracing_at_k8_keeps_each_jobs_next_step_in_its_own_trace(
        start_master: Master, client: redis.Redis, task_name: str) -> None:
    """With eight jobs in flight per child (threads, or tasks of one loop), the span
    current while a job runs is that job's: the next step it enqueues is a child of its
    own attempt, never of a neighbour's (a context attached on the wrong thread or task
    would cross them)."""
    import traced_tasks_k as tk

    node = start_master("--workers", "1", "--concurrency", "8", tasks="traced_tasks_k",
                        env={"TRACE_SPANS_TO_REDIS": "1"})
    steps = [getattr(tk, task_name).delay(n) for n in range(40)]
    follows = {r.id: r.get(timeout=60) for r in steps}
    assert all(AsyncResult(f).get(timeout=30) == n
               for n, f in enumerate(follows[r.id] for r in steps))
    expected = 40 * 3  # per job: its run, its next step's enqueue and run
    wait_until(lambda: client.llen(tk.SPANS) >= expected, timeout=30,
               what="every span exported")
    spans = [json.loads(raw) for raw in client.lrange(tk.SPANS, 0, -1)]
    runs = {span["job_id"]: span for span in spans
            if span["name"] == f"run {getattr(tk, task_name).name}"}
    enqueues = {span["job_id"]: span for span in spans
                if span["name"] == f"enqueue {tk.follow.name}"}
    next_runs = {span["job_id"]: span for span in spans
                 if span["name"] == f"run {tk.follow.name}"}
    assert len(runs) == len(enqueues) == len(next_runs) == 40
    for step_id, follow_id in follows.items():
        run, enqueue, next_run = runs[step_id], enqueues[follow_id], next_runs[follow_id]
        assert enqueue["parent"] == run["span"], "enqueued under its own job's attempt"
        assert next_run["parent"] == enqueue["span"]
        assert enqueue["trace"] == run["trace"] == next_run["trace"]
    assert len({span["trace"] for span in runs.values()}) == 40  # one trace per job
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
