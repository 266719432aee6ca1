"""Node liveness per shard: a dead node's jobs come back on the shards that answer.

Real processes: a 3-master cluster (no replicas, `cluster-require-full-coverage
no`, so the shards that answer serve while one is down), a node "dead" serving
three queues on three shards, a node "live" serving the queues of two shards
and a node "late" serving the third's, and a ledger server counting every
execution.

Once "dead" holds jobs of every queue, the third shard's master is stopped,
then "dead" is SIGKILLed. Its jobs on the two shards that answer are
reclaimed and run by "live" while that shard is still down (the node's
heartbeat is per queue, on the queue's shard; its global key is on the down
shard, on purpose: before the per-queue heartbeats, recovery read that one
and stalled until the shard came back). Its jobs on the down shard are
reclaimed by "late" once the shard is back. No job lost.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ha_checks import final_counts
from ha_servers import ClusterSet, wait_for
from ha_tasks import LEDGER_RUNS, QUEUES, WORK
from node_process import Node
from redis.crc import key_slot
from redis_server import RedisServer

from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
HEARTBEAT = 3.0
PER_QUEUE = 8
JOB_MS = 1500


def _held_by(client: Any, queue: str, prefix: str) -> int:
    """Entries of `queue` pending for consumers whose name starts with `prefix`."""
    found = client.xpending(keys.stream(queue), keys.GROUP)
    return sum(int(c["pending"]) for c in found.get("consumers") or []
               if str(c["name"]).startswith(prefix))


def _states(client: Any, jobs: list[tuple[str, str]]) -> dict[str, str]:
    pipe = client.pipeline(transaction=False)
    for queue, job_id in jobs:
        pipe.get(keys.job(queue, job_id))
    return {job_id: json.loads(raw).get("state", "?") for (_, job_id), raw
            in zip(jobs, pipe.execute(), strict=True) if raw}


def _all_succeeded(client: Any, jobs: list[tuple[str, str]]) -> bool:
    states = _states(client, jobs)
    return all(states.get(job_id) == "succeeded" for _, job_id in jobs)


def test_a_dead_nodes_jobs_come_back_on_the_live_shards_while_one_is_down(
        tmp_path: Path) -> None:
    cluster = ClusterSet(tmp_path / "cluster", replicas=0,
                         options=("--cluster-require-full-coverage", "no"))
    cluster.start()
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    owners = {queue: cluster.slot_owner(key_slot(keys.stream(queue).encode()))
              for queue in QUEUES}
    assert len(set(owners.values())) == 3, owners
    *live_queues, down_queue = QUEUES
    down = next(s for s in cluster.servers if s.port == owners[down_queue])
    # The dead node's global heartbeat lives on the shard that goes down.
    dead_name = next(name for name in (f"dead-{i}" for i in range(1000))
                     if cluster.slot_owner(key_slot(keys.node(name).encode())) == down.port)

    def node(name: str, queues: list[str], workers: int, **env: str) -> Node:
        return Node(name, workers=workers, redis_url=cluster.url, log_dir=tmp_path,
                    heartbeat_timeout=HEARTBEAT, result_ttl=3600, tasks="ha_tasks",
                    cwd=HERE, env={"HA_LEDGER_URL": ledger.url, **env},
                    queues=",".join(queues))

    # `--queues a,b,c` is a strict order (a worker takes from a while it has jobs): to
    # hold jobs of every queue at once, "dead" reads them weighted 1:1:1 three at a
    # time (a share of one job each per fetch, core/queue_order.py).
    dead = node(dead_name, [f"{queue}:1" for queue in QUEUES], 3,
                SUPERVISOR_CONCURRENCY="3")
    live = node("live", live_queues, 2)
    late = node("late", [down_queue], 1)
    producer = Producer(load_config({"redis_url": cluster.url, "result_ttl": 3600}))
    client = producer.client
    try:
        jobs = [(queue, producer.submit(WORK[queue], (JOB_MS,), {}).id)
                for _ in range(PER_QUEUE) for queue in QUEUES]
        dead.start()
        wait_for(lambda: all(_held_by(client, q, dead_name + "/") for q in QUEUES), 60,
                 "the node to be dead holds jobs of every queue")
        live.start()
        late.start()
        live.wait_ready(60)
        late.wait_ready(60)
        held = {queue: _held_by(client, queue, dead_name + "/") for queue in QUEUES}
        down.stop()  # the shard of the third queue is down from here
        dead.kill_group()
        killed = time.monotonic()
        live_jobs = [job for job in jobs if job[0] in live_queues]
        wait_for(lambda: not any(_held_by(client, q, dead_name + "/") for q in live_queues),
                 60, "the dead node's jobs on the live shards reclaimed")
        reclaimed_after = time.monotonic() - killed
        wait_for(lambda: _all_succeeded(client, live_jobs), 60,
                 "every job of the live shards succeeded")
        ran_after = time.monotonic() - killed
        assert down.process is None  # all of it while the third shard was down
        down.start()
        wait_for(cluster.healthy, 60, "the third shard back")
        with contextlib.suppress(RuntimeError):  # counted below, with what is missing
            wait_for(lambda: _all_succeeded(client, jobs), 120, "every job succeeded")
        runs = _runs(ledger)
        counts = final_counts([job_id for _, job_id in jobs], runs, _states(client, jobs))
        summary = (f"{counts}; held by the dead node {held}; its jobs on the live shards "
                   f"reclaimed {reclaimed_after:.1f}s after its death (heartbeat "
                   f"{HEARTBEAT}s), run by {ran_after:.1f}s")
        print(summary)
        assert all(held.values()), summary
        assert not counts.lost, f"{len(counts.lost)} lost: {summary}"
        assert counts.duplicates <= sum(held.values()), summary
        assert _held_by(client, down_queue, dead_name + "/") == 0, summary
        for survivor in (live, late):
            log = survivor.log_path.read_text(errors="replace")
            for error in ("MOVED", "CROSSSLOT", "non local key", " died"):
                assert error not in log, survivor.last_error()
    finally:
        for each in (dead, live, late):
            each.terminate(60)
            each.reap_group()
        ledger.stop()
        cluster.stop()


def _runs(server: RedisServer) -> dict[str, str]:
    import redis

    return dict(redis.Redis.from_url(server.url, decode_responses=True).hgetall(LEDGER_RUNS))


def test_a_worker_reading_three_shards_runs_the_live_shards_jobs_while_one_is_down(
        tmp_path: Path) -> None:
    """One node reads a queue on each of three shards; the third shard's master stops.
    The jobs of the two that answer (new ones, and delayed ones that come due) still run
    while it is down; the third's run once it is back. None lost, none run twice."""
    cluster = ClusterSet(tmp_path / "cluster", replicas=0,
                         options=("--cluster-require-full-coverage", "no"))
    cluster.start()
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    *live_queues, down_queue = QUEUES
    down_port = cluster.slot_owner(key_slot(keys.stream(down_queue).encode()))
    down = next(s for s in cluster.servers if s.port == down_port)
    wide = Node("wide", workers=2, redis_url=cluster.url, log_dir=tmp_path,
                heartbeat_timeout=HEARTBEAT, result_ttl=3600, tasks="ha_tasks", cwd=HERE,
                env={"HA_LEDGER_URL": ledger.url}, queues=",".join(QUEUES))
    producer = Producer(load_config({"redis_url": cluster.url, "result_ttl": 3600}))
    client = producer.client
    try:
        wide.start()
        wide.wait_ready(60)
        # One job per queue first: the node reads all three, and the producer knows them
        # (a new queue's name goes to the registry on the shard of its key, maybe down).
        first = [(queue, producer.submit(WORK[queue], (1,), {}).id) for queue in QUEUES]
        wait_for(lambda: _all_succeeded(client, first), 60, "a first job of each queue")
        # Due while the shard is down: promoted (and run) once it is back.
        waiting = [(down_queue, producer.submit(WORK[down_queue], (1,), {}, countdown=5.0).id)
                   for _ in range(PER_QUEUE)]
        down.stop()
        while_down = [(queue, producer.submit(WORK[queue], (1,), {}).id)
                      for _ in range(PER_QUEUE) for queue in live_queues]
        delayed = [(queue, producer.submit(WORK[queue], (1,), {}, countdown=1.0).id)
                   for queue in live_queues]
        wait_for(lambda: _all_succeeded(client, while_down + delayed), 60,
                 "the live shards' jobs, new and delayed, run while one shard is down")
        assert down.process is None
        down.start()
        wait_for(cluster.healthy, 60, "the third shard back")
        wait_for(lambda: _all_succeeded(client, waiting), 60,
                 "the jobs that waited on the third shard run once it is back")
        jobs = first + waiting + while_down + delayed
        counts = final_counts([job_id for _, job_id in jobs], _runs(ledger),
                              _states(client, jobs))
        assert not counts.lost and not counts.duplicates, counts
        log = wide.log_path.read_text(errors="replace")
        assert f"the shard of queue {down_queue} does not answer" in log
        assert f"the shard of queue {down_queue} answers again" in log
        for error in ("MOVED", "CROSSSLOT", "non local key", " died"):
            assert error not in log, wide.last_error()
    finally:
        wide.terminate(60)
        wide.reap_group()
        ledger.stop()
        cluster.stop()
