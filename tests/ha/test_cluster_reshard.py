"""A node on a 3-master Redis Cluster rides out a resharding and a kill -9 of a master.

Real processes: three masters with a replica each, a `supervisor run
--workers 2` node reading three queues that live on three different shards
(redis+cluster:// URL), and a ledger server of the test's own. 3,000 jobs
(half by `delay()` at a steady rate, half by `enqueue_many`), plus jobs with
a countdown and jobs their task rejects. Mid-run the slot of one queue is
migrated to another master (with a pause while it is half moved, so clients
are answered ASK / TRYAGAIN), then the master that took it is SIGKILLed and
its replica takes over.

Checked: no job lost, duplicates only within what was in flight, every
rejected job in its queue's dead letters, no MOVED / CROSSSLOT / non-local
key error in the node's log, no child died, no producer call failed.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ha_checks import Feed, final_counts
from ha_servers import ClusterSet, wait_for
from ha_tasks import LEDGER_RUNS, QUEUES, REFUSE, WORK
from node_process import Node
from redis_server import RedisServer

from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
JOBS = 3000
COUNTDOWNS = 150
REJECTED = 60
WORKERS = 2
PREFETCH = 16


def _states(client: Any, jobs: list[tuple[str, str]]) -> dict[str, str]:
    """job id -> state, from the records of (queue, job id) pairs (any shard)."""
    states: dict[str, str] = {}
    for start in range(0, len(jobs), 500):
        chunk = jobs[start:start + 500]
        pipe = client.pipeline(transaction=False)
        for queue, job_id in chunk:
            pipe.get(keys.job(queue, job_id))
        for (_, job_id), raw in zip(chunk, pipe.execute(), strict=True):
            if raw:
                states[job_id] = json.loads(raw).get("state", "?")
    return states


def test_cluster_resharding_and_master_kill(cluster_set: ClusterSet, tmp_path: Path) -> None:
    slots = {queue: cluster_set.slot_owner(_slot(queue)) for queue in QUEUES}
    assert len(set(slots.values())) == 3, f"queues not on three shards: {slots}"
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    env = {"HA_LEDGER_URL": ledger.url, "SUPERVISOR_PREFETCH": str(PREFETCH)}
    node = Node("ha-cluster", workers=WORKERS, redis_url=cluster_set.url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="ha_tasks", cwd=HERE, env=env,
                queues=",".join(QUEUES))
    producer = Producer(load_config({"redis_url": cluster_set.url, "result_ttl": 3600}))
    client = producer.client
    jobs: list[tuple[str, str]] = []  # (queue, id) of every job that must succeed
    rejected: list[tuple[str, str]] = []
    try:
        node.start()
        node.wait_ready(60)

        def one(index: int) -> str:
            queue = QUEUES[index % 3]
            if index % 10 == 0 and len(rejected) < REJECTED:
                job_id = REFUSE[queue].delay().id
                rejected.append((queue, job_id))
                return job_id
            if index % 10 == 5 and index // 10 < COUNTDOWNS:
                result = WORK[queue].apply_async((1,), countdown=0.5 + (index % 7) / 2)
            else:
                result = WORK[queue].delay(1)
            jobs.append((queue, result.id))
            return result.id

        def batch(index: int) -> str:
            results = producer.submit_many([WORK[QUEUES[(index + i) % 3]].s(1)
                                            for i in range(100)])
            jobs.extend((result.queue or "", result.id) for result in results)
            return results[0].id

        with _producer_of(producer):
            steady = Feed(one, JOBS // 2 + REJECTED + COUNTDOWNS, every=0.005)
            batches = Feed(batch, JOBS // 2 // 100, every=0.5)
            steady.start()
            batches.start()
            wait_for(lambda: len(steady.ids) > 400, 60, "a part of the feed")
            moved = _slot("alpha")
            target = next(port for port in cluster_set.master_ports()
                          if port != cluster_set.slot_owner(moved))
            cluster_set.migrate_slot(moved, target, between=lambda: time.sleep(0.5))
            wait_for(lambda: len(steady.ids) > 1000, 60, "more of the feed")
            promoted = cluster_set.kill_master(target)
            steady.join(300)
            batches.join(300)
        everything = jobs + rejected

        def settled() -> bool:
            states = _states(client, everything)
            return all(states.get(job_id) in ("succeeded", "failed")
                       for _, job_id in everything)

        with contextlib.suppress(RuntimeError):  # counted below, with what is missing
            wait_for(settled, 120, "every job settled")
        runs = ledger_runs(ledger)
        states = _states(client, everything)
        counts = final_counts([job_id for _, job_id in jobs], runs, states)
        dead = {letter for queue in QUEUES for letter in _dead_ids(client, queue)}
        summary = (f"{counts}; rejected {len(rejected)}, dead letters {len(dead)}; slot "
                   f"{moved} moved to {target}, then killed, {promoted} took over; longest "
                   f"delay() stall {steady.longest_stall():.2f}s, enqueue_many stall "
                   f"{batches.longest_stall():.2f}s")
        print(summary)
        assert not steady.errors and not batches.errors, (steady.errors, batches.errors)
        assert counts.jobs == JOBS + COUNTDOWNS
        assert not counts.lost, f"{len(counts.lost)} lost: {summary}"
        assert counts.duplicates <= 2 * WORKERS * PREFETCH, summary
        assert {job_id for _, job_id in rejected} <= dead, summary
        assert all(states.get(job_id) == "failed" for _, job_id in rejected), summary
        log = node.log_path.read_text(errors="replace")
        for error in ("MOVED", "CROSSSLOT", "non local key", "non-local", " died"):
            assert error not in log, f"{error!r} in the node's log: {node.last_error()}"
        for queue in QUEUES:
            assert client.xlen(keys.stream(queue)) == 0, queue
            assert client.hlen(keys.running(queue)) == 0, queue
    finally:
        node.terminate(60)
        node.reap_group()
        ledger.stop()


def _slot(queue: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(keys.stream(queue).encode()))


def _dead_ids(client: Any, queue: str) -> set[str]:
    found = set()
    for _, fields in client.xrange(keys.dead(queue)):
        with contextlib.suppress(ValueError):
            found.add(str(json.loads(fields.get(keys.MESSAGE_FIELD, "{}")).get("id", "")))
    return found


def ledger_runs(server: RedisServer) -> dict[str, str]:
    import redis

    return dict(redis.Redis.from_url(server.url, decode_responses=True).hgetall(LEDGER_RUNS))


@contextlib.contextmanager
def _producer_of(producer: Producer) -> Any:
    """delay() and apply_async() of the tasks go through `producer` meanwhile."""
    from supervisor.api import producer as module

    before = module._producer
    module._producer = producer
    try:
        yield
    finally:
        module._producer = before
