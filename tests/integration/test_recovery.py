"""Recovery by liveness across nodes, and poison pills, with real processes."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import redis
import sample_tasks
from helpers import wait_until

from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def starts(client: redis.Redis, job_id: str) -> int:
    return int(client.llen(f"t:starts:{job_id}"))


def test_dead_node_jobs_are_reclaimed_by_another_node(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    node_a = start_worker(SUPERVISOR_NODE_NAME="node-a", SUPERVISOR_HEARTBEAT_TIMEOUT="2")
    result = sample_tasks.slow.delay(1.0)
    wait_until(lambda: starts(client, result.id) == 1, what="node-a started the job")
    start_worker(SUPERVISOR_NODE_NAME="node-b", SUPERVISOR_HEARTBEAT_TIMEOUT="2")
    node_a.send_signal(signal.SIGKILL)  # the whole node: its only process
    node_a.wait()
    assert result.get(timeout=15) == "done"  # heartbeat TTL (2 s) + a sweep later
    record = result.info()
    assert record["attempts"][-1]["worker"].startswith("node-b/")
    assert not client.exists(keys.node("node-a"))


def test_a_live_nodes_long_job_is_never_reclaimed(start_worker: Callable[..., Any],
                                                  client: redis.Redis) -> None:
    start_worker(SUPERVISOR_NODE_NAME="node-a", SUPERVISOR_HEARTBEAT_TIMEOUT="1")
    result = sample_tasks.slow.delay(4.0)  # four heartbeat timeouts long
    wait_until(lambda: starts(client, result.id) == 1, what="node-a started the job")
    start_worker(SUPERVISOR_NODE_NAME="node-b", SUPERVISOR_HEARTBEAT_TIMEOUT="1")
    assert result.get(timeout=20) == "done"
    assert starts(client, result.id) == 1
    assert client.hget("t:runs", result.id) == "1"


def test_poison_pill_is_dead_lettered_and_the_node_survives(
        start_master: Callable[..., subprocess.Popen[bytes]], client: redis.Redis) -> None:
    from supervisor import TaskFailed

    node = start_master("--workers", "2", "--max-crashes", "3")
    pill = sample_tasks.dies.delay()
    with pytest.raises(TaskFailed) as failure:
        pill.get(timeout=40)
    assert failure.value.reason == "crashed"
    assert starts(client, pill.id) == 3
    healthy = sample_tasks.echo.delay("still", "alive")
    assert healthy.get(timeout=20) == ["still", "alive"]
    assert node.poll() is None
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
    assert pill.id in node.log_path.read_text()  # type: ignore[attr-defined] # names the pill
