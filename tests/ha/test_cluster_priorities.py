"""Priorities and weighted queue order on a 3-master Redis Cluster (queues on three shards).

Step by step with the Broker (every level path, never a cross-slot command),
then with a real worker reading `alpha:6,beta:3,delta:1`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from ha_servers import ClusterSet, wait_for
from ha_tasks import LEDGER_ORDER, MARK, QUEUES
from node_process import Node
from redis_server import RedisServer

from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.broker.connection import connect
from supervisor.broker.streams import Broker, EnqueueRequest, Settlement
from supervisor.config import load_config
from supervisor.core import outcome, record
from supervisor.core.job import Job, decode
from supervisor.core.queue_order import QueueOrder

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
PREFETCH = 10


def now_ms() -> int:
    return int(time.time() * 1000)


def request(queue: str, job_id: str, priority: int = 0, due_ms: int = 0) -> EnqueueRequest:
    job = Job(id=job_id, task="t", queue=queue, priority=priority)
    return EnqueueRequest(queue, job_id, job.encode(), record.of_new_job(job, due_ms), due_ms)


def ids(deliveries: list[Any]) -> list[str]:
    return [decode(d.message).id for d in deliveries]


def settle_all(broker: Broker, deliveries: list[Any]) -> None:
    done = outcome.Outcome(record="{}", ttl=60)
    settled = broker.settle("c1", [Settlement(d, decode(d.message).id, done)
                                   for d in deliveries], now_ms())
    assert settled == len(deliveries)


def test_priority_levels_and_queue_order_step_by_step(cluster_set: ClusterSet) -> None:
    broker = Broker(connect(cluster_set.url))
    broker.ensure_groups(QUEUES)
    alpha, beta, delta = QUEUES
    broker.enqueue_many([request(alpha, f"low{n}") for n in range(30)]
                        + [request(alpha, "mid", 5), request(alpha, "top", 9)], now_ms())
    # Levels not seen yet by this Broker: found with the plain read and read at once.
    got = broker.fetch("c1", [alpha], 3, None)
    assert ids(got) == ["top", "mid", "low0", "low1", "low2"]
    settle_all(broker, got)
    # Delayed, promoted to its level; handed back and claimed on it.
    broker.enqueue(request(alpha, "late", 7, due_ms=now_ms() + 60_000), now_ms())
    assert broker.promote([alpha], now_ms() + 61_000) == 1
    (late,) = broker.fetch("c1", [alpha], 1, None)
    assert decode(late.message).id == "late"
    assert ids(broker.own_pending("c1", [alpha], set(), 5)) == ["late"]
    claimed = broker.claim_dead(alpha, "c1", "c2")
    assert ids([c.delivery for c in claimed]) == ["late"]
    assert broker.hand_back("c2", [(late, late.message, "late")]) == 1
    assert ids(broker.fetch("c1", [alpha], 1, None)) == ["late"]
    # Strict order over three shards: alpha's rest, then beta fills the batch.
    broker.enqueue_many([request(beta, f"b{n}") for n in range(50)], now_ms())
    strict = broker.fetch("c1", [alpha, beta, delta], 40, None)
    assert ids(strict) == [f"low{n}" for n in range(3, 30)] + [f"b{n}" for n in range(13)]
    # Weighted over three shards: exactly 6:3:1 while all have work.
    for queue in QUEUES:
        broker.enqueue_many([request(queue, f"w{queue}{n}") for n in range(700)], now_ms())
    order = QueueOrder(QUEUES, (6, 3, 1))
    mix: Counter[str] = Counter()
    for _ in range(100):
        plan = order.plan(10)
        batch = broker.fetch("c1", list(QUEUES), 10, None, plan=plan)
        counts = Counter(d.queue for d in batch)
        order.took(plan, counts)
        mix.update(counts)
    assert mix == {alpha: 600, beta: 300, delta: 100}
    # A blocking read over the shards wakes for a job of a level on any of them.
    broker.enqueue(request(delta, "seen", 4), now_ms())
    for queue in QUEUES:  # drain them all
        while broker.fetch("c1", [queue], 500, None):
            pass
    thread = threading.Thread(target=lambda: (time.sleep(0.3), broker_other(cluster_set)))
    thread.start()
    woke = broker.fetch("c1", list(QUEUES), 10, 5000)
    thread.join()
    assert ids(woke) == ["wake"]


def broker_other(cluster_set: ClusterSet) -> None:
    other = Broker(connect(cluster_set.url))
    other.enqueue(request(QUEUES[2], "wake", 4), now_ms())


def test_a_worker_on_a_cluster_runs_priorities_first_and_queues_6_3_1(
        cluster_set: ClusterSet, tmp_path: Path) -> None:
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    producer = Producer(load_config({"redis_url": cluster_set.url}))
    for queue in QUEUES:
        for _ in range(3):
            producer.submit_many([MARK[queue].s("low") for _ in range(1000)])
    node = Node("ha-prio", workers=1, redis_url=cluster_set.url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="ha_tasks", cwd=HERE,
                queues=",".join(f"{q}:{w}" for q, w in zip(QUEUES, (6, 3, 1), strict=True)),
                env={"HA_LEDGER_URL": ledger.url, "SUPERVISOR_PREFETCH": str(PREFETCH)})
    client = redis.Redis.from_url(ledger.url, decode_responses=True)
    try:
        node.start()
        node.wait_ready(60)
        wait_for(lambda: client.llen(LEDGER_ORDER) >= 2000, 120, "2,000 jobs started")
        started = [str(item) for item in client.lrange(LEDGER_ORDER, 0, 1999)]
        mix = Counter(item.partition(":")[0] for item in started)
        # As in tests/integration/test_priorities.py: 1 % of 2,000 covers a cut batch.
        for queue, share in zip(QUEUES, (0.6, 0.3, 0.1), strict=True):
            assert abs(mix[queue] - 2000 * share) <= 20, mix
        before = client.llen(LEDGER_ORDER)
        producer.submit(MARK[QUEUES[2]], ("urgent",), {}, priority=9)
        urgent = f"{QUEUES[2]}:urgent"
        wait_for(lambda: urgent in [str(i) for i in client.lrange(LEDGER_ORDER, 0, -1)], 60,
                 "the urgent job started")
        position = [str(i) for i in client.lrange(LEDGER_ORDER, 0, -1)].index(urgent)
        assert position - before <= 2 * PREFETCH + 1
        assert producer.client.xlen(keys.stream(QUEUES[2])) > 500  # behind nothing waiting
    finally:
        node.terminate(30)
        ledger.stop()
