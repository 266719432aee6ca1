"""--wait-replicas on a 3-master Redis Cluster: each shard written to is asked (WAIT on
its own connection), so what an enqueue or a settle acknowledged is on that shard's
replica; a shard whose replica lags holds its writes until the replica takes them."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from ha_servers import ClusterSet
from ha_tasks import QUEUES
from redis.crc import key_slot

from supervisor.broker import keys
from supervisor.broker.connection import connect
from supervisor.broker.streams import Broker, EnqueueRequest, NotReplicated, Settlement
from supervisor.config import load_config
from supervisor.core import outcome, record
from supervisor.core.job import Job, decode

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]


def now_ms() -> int:
    return int(time.time() * 1000)


def request(queue: str, job_id: str) -> EnqueueRequest:
    job = Job(id=job_id, task="t", queue=queue)
    return EnqueueRequest(queue, job_id, job.encode(), record.of_new_job(job, 0), 0)


def waits(cluster: ClusterSet, port: int) -> int:
    stats = cluster.client(port).info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def replica_of(cluster: ClusterSet, master: int) -> int:
    info = cluster.client(master).info("replication")
    return int(info["slave0"]["port"])


def test_every_shard_written_to_waits_for_its_replica(cluster_set: ClusterSet,
                                                     tmp_path: Path) -> None:
    config = load_config({"redis_url": cluster_set.url, "wait_replicas": 1,
                          "wait_timeout": 0.2}, env={})
    broker = Broker.for_config(connect(cluster_set.url), config)
    owners = {queue: cluster_set.slot_owner(key_slot(keys.stream(queue).encode()))
              for queue in QUEUES}
    assert len(set(owners.values())) == 3  # one queue per shard
    before = {port: waits(cluster_set, port) for port in owners.values()}
    broker.ensure_groups(QUEUES)
    requests = [request(queue, f"{queue}-{n}") for queue in QUEUES for n in range(20)]
    deadline = time.monotonic() + 20
    while True:  # as a producer does: a replica slower than WAIT's 0.2 s is waited for
        try:
            added = broker.enqueue_many(requests, now_ms())
            break
        except NotReplicated:
            assert time.monotonic() < deadline, "the replicas never took the enqueue"
    assert len(added) == 60  # (a retried chunk answers False: added by the try before)
    for queue, port in owners.items():
        assert waits(cluster_set, port) > before[port], queue  # asked on its own shard
        on_replica = cluster_set.client(replica_of(cluster_set, port))
        on_replica.execute_command("READONLY")
        # WAIT returned 1 before the enqueue did: the replica has every record already.
        assert on_replica.exists(*(keys.job_prefix(queue) + f"{queue}-{n}"
                                   for n in range(20))) == 20
    # A settle waits too; with one shard's replica stopped it is tried again (it is
    # idempotent) until the replica is back, and then settles every entry once.
    alpha = QUEUES[0]
    got = broker.fetch("c1", [alpha], 20, None)
    port = replica_of(cluster_set, owners[alpha])
    lagging = next(server for server in cluster_set.servers if server.port == port)
    assert lagging.process is not None
    lagging.process.send_signal(signal.SIGSTOP)
    resume = threading.Timer(1.0, lagging.process.send_signal, (signal.SIGCONT,))
    resume.start()
    done = outcome.Outcome(record="{}", ttl=60)
    settlements = [Settlement(d, decode(d.message).id, done) for d in got]
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            # The first try settles on the master and is not acknowledged by the replica;
            # the next ones find nothing left to settle and wait for the replica again.
            broker.settle("c1", settlements, now_ms())
            break
        except Exception as exc:  # NotReplicated: what a worker's retry loop rides out
            assert "replicas took the write" in str(exc), exc
    resume.join()
    assert tries > 1 and time.monotonic() - started >= 0.8  # held until the replica took it
    client = cluster_set.client(owners[alpha])
    assert client.xpending(keys.stream(alpha), keys.GROUP)["pending"] == 0
    on_replica = cluster_set.client(port)
    on_replica.execute_command("READONLY")
    assert on_replica.mget([keys.job_prefix(alpha) + decode(d.message).id
                            for d in got]) == ["{}"] * 20
