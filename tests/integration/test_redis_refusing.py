"""A worker rides out a Redis that refuses writes, and one that lost its data (issue 12,
items 3 and 8): outcomes kept and written later, never a crash, never a job counted as
crashed, said once in the log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sample_tasks
from helpers import wait_until
from redis_server import RedisServer

from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")
StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.config_set("maxmemory", "0")  # the session server is shared: give it back


def refused(admin: redis.Redis) -> int:
    """How many commands the server refused for memory so far."""
    return int(admin.info("errorstats").get("errorstat_OOM", {}).get("count", 0))


def out_of_memory(admin: redis.Redis) -> None:
    # One byte: below what the server uses whatever it frees meanwhile (a limit
    # just under used_memory is crossed back as soon as buffers shrink).
    admin.config_set("maxmemory", "1")


def noted(notes: Path) -> list[str]:
    return notes.read_text().split() if notes.exists() else []


def test_an_out_of_memory_window_is_ridden_out(
        start_worker: StartWorker, admin: redis.Redis, tmp_path: Path) -> None:
    notes, log = tmp_path / "notes.txt", tmp_path / "worker.log"
    results = [sample_tasks.noted.delay(0.5) for _ in range(8)]
    worker = start_worker(T_NOTES=str(notes), SUPERVISOR_LOG_FILE=str(log))
    wait_until(lambda: noted(notes), what="a job ran")
    before = refused(admin)
    out_of_memory(admin)
    # Held until the worker met it: a settle of a finished job was refused.
    wait_until(lambda: "outcomes are kept" in log.read_text(), timeout=20,
               what="the worker riding out refused writes")
    assert refused(admin) > before
    assert worker.poll() is None, "a refused write must not end the worker"
    admin.config_set("maxmemory", "0")
    assert [result.get(timeout=30) for result in results] == ["noted"] * 8
    assert sorted(noted(notes)) == sorted(result.id for result in results), "each ran once"
    assert admin.xlen(keys.dead("default")) == 0, "no healthy job dead-lettered"
    text = log.read_text()
    assert text.count("is out of memory") >= 1 and "outcomes are kept" in text, text
    assert text.count("retrying with backoff") == 1, "said once per outage"
    assert "Traceback" not in text
    assert worker.poll() is None


def test_redis_losing_its_data_mid_job_is_said_and_work_goes_on(
        start_worker: StartWorker, admin: redis.Redis, tmp_path: Path) -> None:
    notes, log = tmp_path / "notes.txt", tmp_path / "worker.log"
    lost = sample_tasks.noted.delay(1.0)
    worker = start_worker(T_NOTES=str(notes), SUPERVISOR_LOG_FILE=str(log))
    wait_until(lambda: lost.id in noted(notes), what="the job started")
    admin.flushall()  # as a restart without persistence would
    wait_until(lambda: "Redis lost its data" in log.read_text(), timeout=20,
               what="the loss said in the log")
    after = [sample_tasks.noted.delay() for _ in range(5)]
    assert [result.get(timeout=20) for result in after] == ["noted"] * 5
    assert worker.poll() is None
    assert "Traceback" not in log.read_text()
    assert "taken over by another node" not in log.read_text()


def status(url: str, *flags: str) -> str:
    """`supervisor status` as an operator runs it, on another host than the workers."""
    done = subprocess.run([sys.executable, "-m", "supervisor", "status", "--redis-url", url,
                           *flags], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_says_when_redis_refuses_writes(
        start_worker: StartWorker, admin: redis.Redis, redis_url: str) -> None:
    # While Redis refuses writes the workers cannot publish their state: `status`
    # must say why what it shows of them is getting old, and read nothing by writing.
    assert json.loads(status(redis_url, "--json"))["redis"] == {"refusing_writes": None}
    out_of_memory(admin)
    doc = json.loads(status(redis_url, "--json"))
    text = doc["redis"]["refusing_writes"]
    assert text.startswith("Redis at 127.0.0.1:") and "is out of memory" in text, text
    assert "free memory or raise maxmemory" in text
    first = status(redis_url).splitlines()[0]
    assert "is out of memory" in first, first
    admin.config_set("maxmemory", "0")
    assert json.loads(status(redis_url, "--json"))["redis"]["refusing_writes"] is None


def test_status_names_a_replica_as_refusing_writes(
        redis_url: str, tmp_path: Path) -> None:
    primary = redis.Redis.from_url(redis_url)
    port = primary.connection_pool.connection_kwargs["port"]
    replica = RedisServer(tmp_path, None, "--replicaof", "127.0.0.1", str(port))
    replica.start()
    try:
        text = json.loads(status(replica.url, "--json"))["redis"]["refusing_writes"]
        assert text is not None and "is a read-only replica" in text, text
        assert "point the URL at the primary" in text
    finally:
        replica.stop()
