"""`embedded://DIR`: the first user starts the bundled server, everyone else reaches it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HERE, worker_env

from supervisor.api.producer import Producer
from supervisor.broker.embedded import parse_dir, stop_server


@pytest.fixture
def embedded_url(tmp_path: Path) -> Iterator[str]:
    url = f"embedded://{tmp_path / 'data'}"
    yield url
    stop_server(parse_dir(url))


def test_processes_sharing_the_url_share_the_server(embedded_url: str) -> None:
    from supervisor.config import load_config

    producer = Producer(load_config({"redis_url": embedded_url}, env={}))
    result = producer.submit_named("sample_tasks.echo", "default", (1, 2), {})
    data_dir = parse_dir(embedded_url)
    assert (data_dir / "valkey.sock").exists()
    pid_before = (data_dir / "server.pid").read_text()
    worker = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "worker", "--tasks", "sample_tasks"],
        cwd=HERE, env=worker_env(embedded_url),
    )
    try:
        assert result.get(timeout=20) == [1, 2]
    finally:
        worker.terminate()
        assert worker.wait(timeout=15) == 0
    assert (data_dir / "server.pid").read_text() == pid_before  # one server for both
    assert any(data_dir.glob("appendonly*"))  # persistence is on
