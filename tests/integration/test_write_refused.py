"""A Redis that refuses writes (out of memory under `noeviction`) reaches a producer as a
named error with one clear sentence, and the CLI as one line and exit 3."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer

from supervisor.api.producer import Producer
from supervisor.config import load_config
from supervisor.errors import EXIT_REDIS_UNAVAILABLE, BrokerUnavailable, WriteRefused

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHA = re.compile(r"\b[0-9a-f]{40}\b")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A private server whose memory limit is below what it uses: every write is refused."""
    server = RedisServer(tmp_path_factory.mktemp("full"), None, "--maxmemory-policy",
                         "noeviction")
    server.start()
    admin = redis.Redis(port=server.port)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", str(max(1, used - 4096)))
    admin.url = server.url  # type: ignore[attr-defined]
    yield admin
    server.stop()


def test_a_producer_gets_a_named_error_in_one_sentence(full: redis.Redis) -> None:
    import sample_tasks

    producer = Producer(load_config({"redis_url": full.url}))  # type: ignore[attr-defined]
    began = time.monotonic()
    with pytest.raises(WriteRefused) as one:
        producer.submit(sample_tasks.echo, (1,), {})
    assert time.monotonic() - began < 5  # said at once, not after the outage retries
    with pytest.raises(WriteRefused) as many:
        producer.submit_many([sample_tasks.echo.s(i) for i in range(10)])
    for caught in (one, many):
        message = str(caught.value)
        assert isinstance(caught.value, BrokerUnavailable)  # handled like an outage by callers
        port = full.connection_pool.connection_kwargs["port"]
        assert message.startswith(f"Redis at 127.0.0.1:{port} is out of memory "), message
        assert "not enqueued" in message and "; free memory or raise maxmemory" in message
        assert not SHA.search(message) and "script" not in message, message
        assert "\n" not in message


def test_the_cli_prints_one_line_and_exits_3(full: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({"SUPERVISOR_REDIS_URL": full.url, "PYTHONPATH": str(ROOT)})  # type: ignore
    done = subprocess.run([sys.executable, "-m", "supervisor", "enqueue", "tasks.examples.add",
                           "1", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == EXIT_REDIS_UNAVAILABLE, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Redis at "), lines
    assert "out of memory" in lines[0] and not SHA.search(lines[0]), lines
    assert done.stdout == ""


def test_it_enqueues_again_once_memory_is_free(full: redis.Redis) -> None:
    import sample_tasks

    full.config_set("maxmemory", "0")
    try:
        producer = Producer(load_config({"redis_url": full.url}))  # type: ignore[attr-defined]
        assert producer.submit(sample_tasks.echo, (1,), {}).state == "queued"
    finally:
        used = int(full.info("memory")["used_memory"])
        full.config_set("maxmemory", str(max(1, used - 4096)))
