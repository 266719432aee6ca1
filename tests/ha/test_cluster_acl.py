"""The least ACL on a Redis Cluster, as the README documents it (`<!-- acl:cluster -->`).

A 3-master cluster with a replica each; on every node a user with exactly the
documented rule. A node reading queues on all three shards (`--wait-replicas 1`,
so WAIT; several shards, so the blocking reads released with CLIENT UNBLOCK) and a
producer run as that user: new, delayed, retried and dead-lettered jobs, a chord
across shards, rate-limited, concurrency-limited and unique jobs. No node refused a
command (ACL LOG empty everywhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import acl_cluster_tasks as at
import pytest
from ha_servers import ClusterSet
from ha_tasks import QUEUES
from node_process import Node

from supervisor import chord
from supervisor.api import producer as module
from supervisor.api.producer import Producer
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "acl-on-a-cluster"


def documented_rule() -> list[str]:
    """The rule under `<!-- acl:cluster -->` in the README, after user and password."""
    block = (ROOT / "README.md").read_text().split("<!-- acl:cluster -->", 1)[1]
    words = block.split("```", 2)[1].split()
    assert words[:2] == ["ACL", "SETUSER"] and words[3:5] == ["on", ">PASSWORD"], words
    return words[5:]


def test_a_node_and_a_producer_work_on_a_cluster_under_exactly_the_documented_acl(
        cluster_set: ClusterSet, tmp_path: Path) -> None:
    rule = documented_rule()
    for server in cluster_set.servers:  # replicas too: one may be promoted
        admin = cluster_set.client(server.port)
        admin.execute_command("ACL", "SETUSER", "worker", "reset", "on", f">{SECRET}", *rule)
        admin.execute_command("ACL", "LOG", "RESET")
    seeds = cluster_set.url.split("://", 1)[1]
    url = f"redis+cluster://worker:{SECRET}@{seeds}"
    node = Node("acl-cluster", workers=2, redis_url=url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="acl_cluster_tasks", cwd=HERE,
                queues=",".join(QUEUES), env={"SUPERVISOR_WAIT_REPLICAS": "1"})
    producer = Producer(load_config({"redis_url": url, "result_ttl": 3600,
                                     "wait_replicas": 1}))
    before: Any = module._producer
    module._producer = producer
    try:
        node.start()
        node.wait_ready(60)
        # One at a time: the node is idle and blocked on all three shards between them,
        # so each new job releases the other shards' reads (CLIENT UNBLOCK).
        for i in range(5):
            assert at.add_alpha.delay(i, 1).get(timeout=30) == i + 1
            assert at.add_beta.delay(i, 2).get(timeout=30) == i + 2
        assert at.add_beta.apply_async((3, 4), countdown=0.5).get(timeout=30) == 7
        assert at.flaky_delta.delay().get(timeout=30) == 2
        with pytest.raises(Exception, match="refused on purpose"):
            at.refuse_delta.delay().get(timeout=30)
        assert chord([at.add_alpha.s(i, i) for i in range(50)], at.total_beta.s()).delay(
            ).get(timeout=60) == sum(2 * i for i in range(50))
        limited = [at.paced_alpha.delay(i) for i in range(20)] + [
            at.capped_beta.delay(i) for i in range(5)] + [at.once_alpha.delay(7)]
        assert [job.get(timeout=30) for job in limited] == [*range(20), *range(5), 7]
        assert node.running, node.last_error()
    finally:
        module._producer = before
        node.terminate(30)
    refused = {server.port: cluster_set.client(server.port).execute_command("ACL", "LOG")
               for server in cluster_set.servers}
    assert not any(refused.values()), refused
    log = node.log_path.read_text(errors="replace")
    for error in ("NOPERM", "no permissions", "Traceback"):
        assert error not in log, node.last_error()


def test_a_rule_without_client_unblock_is_named_in_the_log_and_loses_nothing(
        cluster_set: ClusterSet, tmp_path: Path) -> None:
    """Without +client|unblock the released reads end at their BLOCK timeout instead:
    jobs still run, but pickup is slower for a reason no metric shows, so the worker
    says once what permission is missing."""
    rule = [word for word in documented_rule() if word != "+client|unblock"]
    for server in cluster_set.servers:
        cluster_set.client(server.port).execute_command(
            "ACL", "SETUSER", "worker", "reset", "on", f">{SECRET}", *rule)
    seeds = cluster_set.url.split("://", 1)[1]
    url = f"redis+cluster://worker:{SECRET}@{seeds}"
    node = Node("acl-no-unblock", workers=1, redis_url=url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="acl_cluster_tasks", cwd=HERE,
                queues=",".join(QUEUES))
    producer = Producer(load_config({"redis_url": url, "result_ttl": 3600}))
    before: Any = module._producer
    module._producer = producer
    try:
        node.start()
        node.wait_ready(60)
        for i in range(3):  # idle between jobs: each one ends a read on the other shards
            assert at.add_alpha.delay(i, 1).get(timeout=30) == i + 1
            assert at.add_beta.delay(i, 2).get(timeout=30) == i + 2
        assert node.running, node.last_error()
    finally:
        module._producer = before
        node.terminate(30)
    log = node.log_path.read_text(errors="replace")
    assert log.count("Redis refused CLIENT UNBLOCK") == 1, log[-3000:]
    assert "+client|unblock" in log
    assert "Traceback" not in log, node.last_error()
