"""A plain redis:// URL aimed at a sentinel, a replica or a cluster node is refused at start.

Such a server half works (a sentinel answers PING, a replica serves reads, a
cluster node takes the keys of its own slots), so the worker's start-up
probe and the producer's first enqueue refuse it, naming the URL to use.
"""

from __future__ import annotations

import asyncio

import pytest
from ha_servers import ClusterSet, SentinelSet

from supervisor.api.aproducer import AsyncProducer
from supervisor.api.producer import Producer
from supervisor.broker.refusals import probe
from supervisor.config import load_config
from supervisor.errors import WriteRefused

pytestmark = pytest.mark.ha


def async_submit(url: str) -> None:
    """One adelay() through a fresh async producer for `url`."""
    from tasks.examples import add

    async def run() -> None:
        made = AsyncProducer(load_config({"redis_url": url}, env={}))
        try:
            await made.submit(add, (1, 2), {})
        finally:
            await made.client.aclose()
    asyncio.run(run())


def test_sentinel_and_replica_addresses_are_refused(sentinel_set: SentinelSet) -> None:
    sentinel = f"redis://127.0.0.1:{sentinel_set.sentinels[0].port}/0"
    refusal = probe(sentinel, ["default"])
    assert refusal is not None and refusal.permanent
    assert "is a Sentinel" in str(refusal) and "redis+sentinel://" in str(refusal)
    replica = next(s.port for s in sentinel_set.servers if s.port != sentinel_set.master_port())
    refusal = probe(f"redis://127.0.0.1:{replica}/0", ["default"])
    assert refusal is not None and refusal.permanent and "read-only replica" in str(refusal)
    with pytest.raises(WriteRefused, match="redis\\+sentinel://"):
        Producer(load_config({"redis_url": sentinel})).submit_named(
            "tasks.examples.add", "default", (1, 2), {})
    with pytest.raises(WriteRefused, match="redis\\+sentinel://"):
        async_submit(sentinel)
    # The right URL serves, and the master's address as a plain URL does too.
    assert probe(sentinel_set.url, ["default"]) is None
    assert probe(f"redis://127.0.0.1:{sentinel_set.master_port()}/0", ["default"]) is None


def test_cluster_node_address_is_refused(cluster_set: ClusterSet) -> None:
    node = f"redis://127.0.0.1:{cluster_set.master_ports()[0]}"
    refusal = probe(node, ["default"])
    assert refusal is not None and refusal.permanent and "redis+cluster://" in str(refusal)
    with pytest.raises(WriteRefused, match="redis\\+cluster://"):
        async_submit(node)
    assert probe(cluster_set.url, ["default", "alpha", "beta"]) is None


def test_supervisor_run_against_a_sentinel_address_exits_8_naming_the_url(
        sentinel_set: SentinelSet) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from supervisor.errors import EXIT_REDIS_REFUSED

    sentinel = f"redis://127.0.0.1:{sentinel_set.sentinels[0].port}/0"
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--workers", "1", "--redis-url", sentinel,
         "--tasks", "tasks.examples"], cwd=Path(__file__).resolve().parents[2],
        capture_output=True, text=True, timeout=60)
    # The master stops at once with the refusal (never restarts children in a loop).
    assert done.returncode == EXIT_REDIS_REFUSED, (done.returncode, done.stderr[-2000:])
    assert "redis+sentinel://" in done.stderr and "is a Sentinel" in done.stderr
