"""The dashboard's test bed: one Redis, a real two-node cluster, dashboards in front of it.

Session-wide (the nodes take seconds to boot); every test uses its own job
ids and switches, so none needs the server emptied.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import wait_until
from node_process import Node
from redis_server import RedisServer
from ui_harness import ARTIFACTS, TOKEN, UiProcess

from supervisor.api.producer import Producer
from supervisor.config import load_config

HERE = Path(__file__).resolve().parent
NODES = ("ui-node-a", "ui-node-b")


@pytest.fixture(scope="session")
def ui_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("ui-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster(ui_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        list[Node]]:
    """Two nodes of one worker each on queues default and reports, running ui_tasks
    (and its hourly schedule)."""
    logs = tmp_path_factory.mktemp("ui-nodes")
    nodes = [Node(name, workers=1, redis_url=ui_redis.url, log_dir=logs, heartbeat_timeout=3,
                  result_ttl=3600, tasks="ui_tasks", queues="default,reports", cwd=HERE)
             for name in NODES]
    for node in nodes:
        node.start()
    try:
        for node in nodes:
            node.wait_ready(60)
        client = redis.Redis.from_url(ui_redis.url, decode_responses=True)
        wait_until(lambda: all(client.exists(f"sv:nodestate:{n}") for n in NODES), 30,
                   what="both nodes published their state")
        yield nodes
    finally:
        for node in nodes:
            if node.running:
                node.send(signal.SIGTERM)
        for node in nodes:
            if node.process is not None:
                try:
                    node.process.wait(30)
                except Exception:  # noqa: BLE001 - a stuck node is killed, not left behind
                    node.kill_group()


@contextlib.contextmanager
def dashboard(redis_url: str, tmp: Path, *options: str, token: str | None = TOKEN) -> Iterator[
        UiProcess]:
    ui = UiProcess(redis_url, tmp, *options, token=token).start()
    try:
        yield ui
    finally:
        ui.stop()


@pytest.fixture(scope="session")
def ui_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-logs")


@pytest.fixture(scope="session")
def ui_actions(cluster: list[Node], ui_redis: RedisServer, ui_logs: Path) -> Iterator[UiProcess]:
    """A dashboard with a token and --allow-actions."""
    with dashboard(ui_redis.url, ui_logs, "--allow-actions") as ui:
        yield ui


@pytest.fixture(scope="session")
def ui_readonly(cluster: list[Node], ui_redis: RedisServer, ui_logs: Path) -> Iterator[UiProcess]:
    """A dashboard with a token, read-only (no --allow-actions)."""
    with dashboard(ui_redis.url, ui_logs) as ui:
        yield ui


@pytest.fixture(scope="session")
def producer(ui_redis: RedisServer) -> Producer:
    return Producer(load_config({"redis_url": ui_redis.url}, env={}))


@pytest.fixture(scope="session")
def rclient(ui_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(ui_redis.url, decode_responses=True)


@pytest.fixture(scope="session", autouse=True)
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

