"""Session-wide fixtures: one private Redis server, flushed between tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
# `tasks/` is not installed; tests import it the way `--tasks` would, from the repo root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The private server's URL, emptied before each test (it is ours alone)."""
    if redis_server.process is None:  # a test killed it: bring it back
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    monkeypatch.setenv("SUPERVISOR_REDIS_URL", redis_server.url)
    yield redis_server.url


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop SUPERVISOR_* settings of the developer's shell from the test's view."""
    for name in list(os.environ):
        if name.startswith("SUPERVISOR_"):
            monkeypatch.delenv(name)
