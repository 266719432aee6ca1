"""Flow control on a 3-master Redis Cluster: a rate limit, a concurrency limit and a
unique job, each on a queue of its own shard, hold as on one server (every key of
them in its queue's slot, declared to its script)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import limit_cluster_tasks as lt
import pytest
import redis
from ha_servers import ClusterSet
from node_process import Node
from redis.crc import key_slot
from redis_server import RedisServer

from supervisor.api import producer as module
from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
RATE, BURST = 20, 2  # lt.rated's "20/s"; the burst is a tenth of the rate (README)


def _running_at_once(events: list[str]) -> int:
    """The most jobs running at one moment, from "s <time>" / "e <time>" events (an end
    before a start at the same instant: a slot freed, then taken)."""
    peak = now = 0
    for _, starts in sorted((float(e.split()[1]), e.startswith("s ")) for e in events):
        now += 1 if starts else -1
        peak = max(peak, now)
    return peak


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "ledger")
    server.start()
    yield server
    server.stop()


def test_limits_and_unique_jobs_hold_on_three_shards(cluster_set: ClusterSet,
                                                     ledger: RedisServer,
                                                     tmp_path: Path) -> None:
    shards = {queue: cluster_set.slot_owner(key_slot(keys.stream(queue).encode()))
              for queue in ("alpha", "beta", "delta")}
    assert len(set(shards.values())) == 3, f"queues not on three shards: {shards}"
    nodes = [Node(f"lim-{n}", workers=2, redis_url=cluster_set.url, log_dir=tmp_path,
                  heartbeat_timeout=5, result_ttl=3600, tasks="limit_cluster_tasks", cwd=HERE,
                  queues="alpha,beta,delta", env={"HA_LEDGER_URL": ledger.url},
                  options=("--concurrency", "4"))
             for n in range(2)]
    producer = Producer(load_config({"redis_url": cluster_set.url, "result_ttl": 3600}))
    before: Any = module._producer
    module._producer = producer
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready(60)
        # Unique: 200 enqueues from 8 threads while the first is queued or running.
        with ThreadPoolExecutor(8) as pool:
            handles = list(pool.map(lambda _: lt.once.delay("2026-12-02"), range(200)))
        assert len({handle.id for handle in handles}) == 1
        rated = [lt.rated.delay(i) for i in range(60)]
        capped = [lt.capped.delay(i) for i in range(30)]
        assert [h.get(timeout=60) for h in capped] == list(range(30))
        assert [h.get(timeout=60) for h in rated] == list(range(60))
        assert handles[0].get(timeout=30) == "2026-12-02"
        # Settled: the lock is gone and the next enqueue is a new job.
        assert lt.once.delay("2026-12-02").id != handles[0].id
    finally:
        module._producer = before
        for node in nodes:
            node.terminate(30)
    client = redis.Redis.from_url(ledger.url, decode_responses=True)
    starts = sorted(float(t) for t in client.lrange("lim:rated", 0, -1))
    assert len(starts) == 60
    first = starts[0]
    per_second: dict[int, int] = {}
    for at in starts:
        per_second[math.floor(at - first)] = per_second.get(math.floor(at - first), 0) + 1
    assert max(per_second.values()) <= RATE + BURST, per_second
    assert starts[-1] - first >= (60 - RATE - BURST) / RATE, "60 starts at 20/s take ~2 s"
    assert _running_at_once(client.lrange("lim:capped", 0, -1)) == 3  # held, and used
    client.close()
    for node in nodes:
        log = node.log_path.read_text(errors="replace")
        for error in ("CROSSSLOT", "non local", "MOVED", "Traceback"):
            assert error not in log, (node.name, error)
