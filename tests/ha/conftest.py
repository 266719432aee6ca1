"""Fixtures of the high-availability tests: real Sentinel and Cluster deployments."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from ha_servers import ClusterSet, SentinelSet  # noqa: E402


@pytest.fixture(autouse=True)
def no_default_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer left on the environment's URL fails at once (port 1: nothing listens)
    instead of writing to redis-py's default 127.0.0.1:6379: every test here names
    the deployment it uses."""
    monkeypatch.setenv("SUPERVISOR_REDIS_URL", "redis://127.0.0.1:1/0")


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    deployment = SentinelSet(tmp_path / "sentinel")
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def cluster_set(tmp_path: Path) -> Iterator[ClusterSet]:
    deployment = ClusterSet(tmp_path / "cluster")
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
