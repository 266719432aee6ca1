"""Workflows on a 3-master Redis Cluster: chains and chords across queues on two shards.

Every script runs in one slot: a step bound for the other shard goes through the
forward list of its queue, moved on by a worker. Checked: the results, from
delay() and from adelay()/aget() (the async producer), and no CROSSSLOT /
non-local key error in the node's log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import wf_cluster_tasks as wt
from ha_servers import ClusterSet
from helpers import wait_until
from node_process import Node
from redis.crc import key_slot

from supervisor import chain, chord, group
from supervisor.api import producer as module
from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.broker.inspect import queue_stats
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent


async def _from_a_loop(url: str) -> tuple[Any, ...]:
    from supervisor.api import aproducer

    made = aproducer.AsyncProducer(load_config({"redis_url": url, "result_ttl": 3600}))
    before = aproducer.current_async_producer
    aproducer.current_async_producer = lambda: made
    try:
        # A cluster whose masters lost their scripts: each call answers NOSCRIPT first.
        await made.client.execute_command("SCRIPT", "FLUSH",
                                          target_nodes=made.client.PRIMARIES)
        crossing = await (wt.add_alpha.s(1, 2) | wt.add_beta.s(3) | wt.add_alpha.s(4)).adelay()
        mixed = await (chord([wt.add_alpha.s(1, 1), wt.add_beta.s(2, 2), wt.add_beta.s(3, 3)],
                             wt.total_alpha.s()) | wt.add_beta.s(100)).adelay()
        both = await group([wt.add_beta.s(i, 0) for i in range(1500)]
                           + [wt.add_alpha.s(i, 1) for i in range(1500)]).adelay()
        return (await crossing.aget(timeout=60), await mixed.aget(timeout=60),
                await both.aget(timeout=120))
    finally:
        aproducer.current_async_producer = before
        await made.client.aclose()


def test_workflows_span_two_shards(cluster_set: ClusterSet, tmp_path: Path) -> None:
    shards = {queue: cluster_set.slot_owner(key_slot(keys.stream(queue).encode()))
              for queue in ("alpha", "beta")}
    assert len(set(shards.values())) == 2, f"queues on one shard: {shards}"
    node = Node("wf-cluster", workers=2, redis_url=cluster_set.url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="wf_cluster_tasks", cwd=HERE,
                queues="alpha,beta")
    producer = Producer(load_config({"redis_url": cluster_set.url, "result_ttl": 3600}))
    before: Any = module._producer
    module._producer = producer
    try:
        node.start()
        node.wait_ready(60)
        assert (wt.add_alpha.s(1, 2) | wt.add_beta.s(3) | wt.add_alpha.s(4)).delay().get(
            timeout=60) == 10
        # Members on one shard, callback on the other.
        assert chord([wt.add_alpha.s(i, i) for i in range(200)], wt.total_beta.s()).delay(
            ).get(timeout=60) == sum(2 * i for i in range(200))
        # Members on both shards (the chord lives with its callback), then a chain step.
        mixed = chord([wt.add_alpha.s(1, 1), wt.add_beta.s(2, 2), wt.add_beta.s(3, 3)],
                      wt.total_alpha.s()) | wt.add_beta.s(100)
        assert mixed.delay().get(timeout=60) == 112
        assert group(chain(wt.add_alpha.s(i, 0), wt.add_beta.s(1)) for i in range(20)).delay(
            ).get(timeout=60) == [i + 1 for i in range(20)]
        # A group whose first jobs are on both shards: staged and committed in pipelines
        # routed per node (one round trip each), its tree on the shard of beta.
        both = group([wt.add_beta.s(i, 0) for i in range(1500)]
                     + [wt.add_alpha.s(i, 1) for i in range(1500)]).delay()
        assert both.get(timeout=120) == list(range(1500)) + list(range(1, 1501))
        client = producer.client

        def finished() -> tuple[int, ...]:  # ends in the other shard come as forwards
            alpha, beta = queue_stats(client, "alpha"), queue_stats(client, "beta")
            return (alpha.workflows_running, alpha.workflows_succeeded,
                    beta.workflows_running, beta.workflows_succeeded)

        wait_until(lambda: finished() == (0, 4, 0, 1), timeout=20,
                   what="every workflow counted as succeeded in the queue of its tree")
        # The same from asyncio code, on the async producer's RedisCluster client: each
        # round's calls pipelined per node, NOSCRIPT loaded on every master.
        assert asyncio.run(_from_a_loop(cluster_set.url)) == (
            10, 112, list(range(1500)) + list(range(1, 1501)))
        wait_until(lambda: finished() == (0, 6, 0, 2), timeout=20,
                   what="the async workflows counted as succeeded too")
    finally:
        module._producer = before
        node.terminate(30)
    log = node.log_path.read_text(errors="replace")
    for error in ("CROSSSLOT", "non local", "MOVED"):
        assert error not in log
