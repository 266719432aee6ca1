"""Status, job timelines, /metrics and JSON logs, on real masters and a private Redis.

Masters run as subprocesses in their own session (master_harness), so a test
can SIGKILL a whole node. Synchronisation is on what the system shows: the
published node states, the job records, the scraped numbers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import worker_env
from helpers import wait_until
from master_harness import MasterProcess, Masters
from prometheus_client.parser import text_string_to_metric_families
from redis_server import free_port

from supervisor.api.producer import current_producer
from supervisor.api.result import AsyncResult
from supervisor.broker.nodes import cluster_status

pytestmark = pytest.mark.usefixtures("producer")

Start = Callable[..., MasterProcess]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def start(tmp_path: Path, redis_url: str) -> Iterator[Start]:
    masters = Masters()

    def _start(node: str, *options: str, workers: int = 2) -> MasterProcess:
        return masters.run(tmp_path, worker_env(redis_url), workers=workers,
                           tasks="sample_tasks,tasks.examples",
                           options=["--node-name", node, "--heartbeat-timeout", "2",
                                    "--graceful-timeout", "5", *options])

    yield _start
    masters.stop_all()

def enqueue(task: str, *args: Any) -> AsyncResult[Any]:
    return current_producer().submit_named(task, "default", args, {})


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor", *args], env=worker_env(redis_url),
                          capture_output=True, text=True, timeout=30, check=False)


def nodes(client: redis.Redis) -> dict[str, dict[str, Any]]:
    return {node["node"]: node for node in cluster_status(client)["nodes"]}


def busy_with(client: redis.Redis, job_id: str) -> dict[str, Any] | None:
    for node in nodes(client).values():
        for worker in node["workers"]:
            if worker["state"] == "busy" and worker["job_id"] == job_id:
                return {"node": node["node"], **worker}
    return None


def test_two_nodes_in_status_then_a_killed_node_is_dead_then_gone(
    start: Start, client: redis.Redis, redis_url: str,
) -> None:
    a = start("node-a", workers=2)
    b = start("node-b", workers=1)
    a.notify.wait_for("READY=1")
    b.notify.wait_for("READY=1")
    job = enqueue("sample_tasks.slow", 30)
    holder = wait_until(lambda: busy_with(client, job.id), timeout=15,
                        what="a busy worker showing the slow job")
    assert holder["task"] == "sample_tasks.slow" and holder["running_for"] >= 0
    wait_until(lambda: {(n["status"], n["workers_live"]) for n in nodes(client).values()}
               == {("alive", 2), ("alive", 1)}, timeout=15, what="both nodes, all workers up")

    shown = cli(redis_url, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["schema"] == 1
    by_name = {node["node"]: node for node in doc["nodes"]}
    assert set(by_name) == {"node-a", "node-b"}
    assert (by_name["node-a"]["workers_target"], by_name["node-a"]["workers_live"]) == (2, 2)
    assert (by_name["node-b"]["workers_target"], by_name["node-b"]["workers_live"]) == (1, 1)
    assert by_name["node-a"]["master_pid"] == a.pid and by_name["node-b"]["master_pid"] == b.pid
    assert len(by_name["node-a"]["workers"]) == 2
    for worker in by_name["node-a"]["workers"] + by_name["node-b"]["workers"]:
        assert worker["rss"] > 0 and worker["pid"] > 0
    busy = [w for n in doc["nodes"] for w in n["workers"] if w["state"] == "busy"]
    assert [w["job_id"] for w in busy] == [job.id]
    (queue,) = doc["queues"]
    assert queue["queue"] == "default" and queue["running"] == 1

    table = cli(redis_url, "status")
    assert table.returncode == 0 and "node-a" in table.stdout and "node-b" in table.stdout

    os.killpg(b.pid, signal.SIGKILL)
    wait_until(lambda: nodes(client).get("node-b", {}).get("status") == "dead", timeout=10,
               what="node-b shown dead")
    assert nodes(client)["node-a"]["status"] == "alive"
    wait_until(lambda: "node-b" not in nodes(client), timeout=20, what="node-b gone")
    assert "node-a" in nodes(client)


def test_job_timeline_of_a_flaky_job_and_its_json_log_lines(
    start: Start, redis_url: str, tmp_path: Path,
) -> None:
    master = start("node-j", "--log-format", "json", "--log-level", "DEBUG", workers=1)
    master.notify.wait_for("READY=1")
    job = enqueue("tasks.examples.flaky")
    assert job.get(timeout=20) == 3

    shown = cli(redis_url, "job", job.id, "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert (doc["state"], doc["attempts"], doc["task"]) == ("succeeded", 3, "tasks.examples.flaky")
    kinds = [event["event"] for event in doc["events"]]
    assert kinds == ["enqueued", "started", "retry", "started", "retry", "started", "succeeded",
                     "succeeded"]
    pid = master.child_pids().pop()
    for event in doc["events"][1:7]:
        assert (event["node"], event["pid"]) == ("node-j", pid)
    assert doc["events"][2]["exc_type"] == "TemporaryGlitch"
    assert doc["events"][-1]["result"] == 3

    text = cli(redis_url, "job", job.id)
    assert text.returncode == 0, text.stderr
    assert "attempt 2 failed" in text.stdout and "final state: succeeded" in text.stdout

    def job_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in master.log().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("job_id") == job.id]

    wait_until(lambda: len(job_lines()) == 3, timeout=10, what="3 log lines about the job")
    every = [json.loads(line) for line in master.log().splitlines() if line.startswith("{")]
    assert every and all({"time", "level", "message", "node", "pid"} <= set(e) for e in every)
    failed, _, succeeded = job_lines()
    for line in (failed, succeeded):
        assert {"job_id", "task", "queue", "attempt", "duration", "node", "pid"} <= set(line)
        assert (line["task"], line["queue"], line["node"], line["pid"]) == (
            "tasks.examples.flaky", "default", "node-j", pid)
    assert (failed["level"], failed["attempt"]) == ("info", 1)
    assert (succeeded["level"], succeeded["attempt"]) == ("debug", 3)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_count_every_job_across_recycled_children(
    start: Start, client: redis.Redis,
) -> None:
    port = free_port()
    # One worker recycling every 4 jobs (no jitter below 10 jobs): 10 jobs, 2+ recycles.
    master = start("node-m", "--metrics-port", str(port), "--max-jobs-per-child", "4",
                   workers=1)
    master.notify.wait_for("READY=1")
    jobs = [enqueue("sample_tasks.quick") for _ in range(8)]
    jobs += [enqueue("sample_tasks.rejects") for _ in range(2)]
    for item in jobs:
        wait_until(lambda item=item: item.state in ("succeeded", "failed"), timeout=30,
                   what=f"job {item.id} done")

    quick = (("outcome", "succeeded"), ("queue", "default"), ("task", "sample_tasks.quick"))
    rejected = (("outcome", "failed"), ("queue", "default"), ("task", "sample_tasks.rejects"))

    def settled() -> dict[str, Any] | None:
        found = scrape(port)
        jobs_total = found.get("supervisor_jobs_total", {})
        restarts = found.get("supervisor_child_restarts_total", {})
        depth = found.get("supervisor_queue_depth", {})
        if (jobs_total.get(quick) == 8 and jobs_total.get(rejected) == 2
                and restarts.get((("reason", "max_jobs"),), 0) >= 2
                and depth.get((("queue", "default"), ("state", "dead"))) == 2):
            return found
        return None

    found = wait_until(settled, timeout=20, what="all 10 jobs counted after 2 recycles, "
                       "2 dead letters in the queue depth")
    counts = found["supervisor_job_duration_seconds_count"]
    assert counts[(("task", "sample_tasks.quick"),)] == 8
    assert counts[(("task", "sample_tasks.rejects"),)] == 2
    assert found["supervisor_workers_target"][()] == 1
    assert found["supervisor_redis_reconnects_total"][()] == 0
    assert found["supervisor_queue_depth"][(("queue", "default"), ("state", "waiting"))] == 0
    assert found["supervisor_workflow_chords_open"][(("queue", "default"),)] == 0
    assert all(found["supervisor_workflows"][(("queue", "default"), ("state", state))] == 0
               for state in ("running", "succeeded", "failed"))

    directory = Path(os.environ.get("TMPDIR", "/tmp"))
    private = list(directory.glob(f"supervisor-metrics-{master.pid}-*"))
    assert len(private) == 1 and list(private[0].glob("*.db")), "the children's metric files"
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    assert not private[0].exists(), "the master removes its metrics directory"


def test_idle_connections_never_keep_a_scrape_out(start: Start) -> None:
    """A slowloris client holding more sockets than the cap, some with half a request:
    every scrape still gets through, and the master keeps supervising meanwhile."""
    port = free_port()
    master = start("node-s", "--metrics-port", str(port), workers=1)
    master.notify.wait_for("READY=1")
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(80)]
    try:
        for sock in idle[::4]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        master.send(signal.SIGTTIN)
        for _ in range(18):
            assert scrape(port)["supervisor_workers_target"][()] >= 1
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        master.wait_children(2, timeout=10)  # TTIN was obeyed meanwhile
        assert scrape(port)["supervisor_workers_target"][()] == 2
    finally:
        for sock in idle:
            sock.close()
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
