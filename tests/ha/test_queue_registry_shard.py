"""The queue registry's shard down: producers go on enqueueing to the shards that answer.

`sv:queues` (the names `status`, the dashboard and `drain()` list) lives on one
shard of a cluster; a queue's jobs on their own. A producer that starts while
the registry's shard is down used to fail every enqueue (the name is added
before a queue's first job). Now its jobs go to their shards, the names are
added once the registry's shard answers again. Sync and async producers, one
job and many. Real 3-master cluster, no replicas, `cluster-require-full-coverage
no` (the shards that answer serve while one is down).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from ha_servers import ClusterSet, wait_for
from ha_tasks import QUEUES, WORK
from redis.crc import key_slot

from supervisor.api.aproducer import AsyncProducer
from supervisor.api.producer import Producer
from supervisor.broker import keys, queue_registry
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]


def test_a_producer_enqueues_while_the_registrys_shard_is_down(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_registry, "RETRY_AFTER", 0.5)
    cluster = ClusterSet(tmp_path / "cluster", replicas=0,
                         options=("--cluster-require-full-coverage", "no"))
    cluster.start()
    try:
        registry_port = cluster.slot_owner(key_slot(keys.QUEUES.encode()))
        elsewhere = [q for q in QUEUES
                     if cluster.slot_owner(key_slot(keys.stream(q).encode())) != registry_port]
        assert len(elsewhere) == 2, elsewhere
        one, many = elsewhere
        config = load_config({"redis_url": cluster.url, "result_ttl": 600}, env={})
        next(s for s in cluster.servers if s.port == registry_port).stop()
        caplog.set_level(logging.WARNING, "supervisor.broker")

        producer = Producer(config)  # a producer that starts now
        job = producer.submit(WORK[one], (1,), {})
        jobs = producer.submit_many([WORK[many].s(i) for i in range(20)])

        async def from_asyncio() -> list[str]:
            made = AsyncProducer(config)
            try:
                single = await made.submit(WORK[one], (2,), {})
                batch = await made.submit_many([WORK[many].s(i) for i in range(5)])
                return [single.id, *(each.id for each in batch)]
            finally:
                await made.client.aclose()
        async_ids = asyncio.run(from_asyncio())

        client = producer.client
        assert client.xlen(keys.stream(one)) == 2 and client.xlen(keys.stream(many)) == 25
        assert client.exists(keys.job(one, job.id))
        assert all(client.exists(keys.job(many, each.id)) for each in jobs)
        assert len(async_ids) == 6
        assert "the shard of the queue registry does not answer" in caplog.text

        next(s for s in cluster.servers if s.port == registry_port).start()
        wait_for(cluster.healthy, 60, "the registry's shard back")

        def listed() -> bool:
            producer.submit(WORK[one], (3,), {})  # a later enqueue adds what it could not
            producer.submit(WORK[many], (3,), {})
            return {one, many} <= set(client.smembers(keys.QUEUES))
        wait_for(listed, 30, "both queues in the registry")
    finally:
        cluster.stop()
