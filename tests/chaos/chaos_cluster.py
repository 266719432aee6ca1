"""Processes of a chaos run: a broker Redis, a ledger Redis and `supervisor run` nodes.

The broker server is private to the run (append-only, `appendfsync always`)
because the harness kills and restarts it; the ledger server holds the
executions the task records and is never touched by faults.

The nodes read overlapping sets of queues (NODE_QUEUES): one node reads one
queue, one reads all three, one reads two; every queue has two readers, so
a dead node's jobs always have another node to take them over.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from chaos_tasks import QUEUES
from node_process import Node, quiet_port
from redis_server import RedisServer

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "ha") not in sys.path:  # the Sentinel deployment of the ha tests
    sys.path.append(str(HERE.parent / "ha"))

__all__ = ["NODE_QUEUES", "Cluster", "Node", "quiet_port"]

# Node name -> its --queues, in the order the node reads them.
NODE_QUEUES = {"chaos-1": "default", "chaos-2": "default,alpha,beta", "chaos-3": "beta,alpha"}
assert {q for queues in NODE_QUEUES.values() for q in queues.split(",")} == set(QUEUES)


class Cluster:
    """The broker, the ledger and `size` nodes named chaos-1..chaos-N.

    With `sentinel`, the broker is a Sentinel deployment (a master, two
    replicas, three sentinels: tests/ha/ha_servers.py) and the nodes and the
    harness use its redis+sentinel:// URL; the broker's faults are then
    failovers and kills of the master (chaos_faults.redis_kill). Every enqueue and
    settle then waits for one replica (`--wait-replicas 1`, `wait_replicas`): without
    it Redis's asynchronous replication loses what the master acknowledged last at a
    failover (README, "What Redis can still lose"), and a failover the sentinels start
    by themselves when the loaded machine makes the master answer their PINGs late
    (down-after-milliseconds 1 s) lost 24 jobs and re-ran 13 settled ones in one run.
    """

    def __init__(self, workdir: Path, *, size: int = 3, workers: int = 2,
                 heartbeat_timeout: float = 3.0, result_ttl: int = 15,
                 sentinel: bool = False) -> None:
        self.workdir = workdir
        self.broker = RedisServer(workdir / "broker", quiet_port())
        self.sentinel: Any = None
        self.broker_url = self.broker.url
        self.wait_replicas = 1 if sentinel else 0
        if sentinel:
            from ha_servers import SentinelSet

            self.sentinel = SentinelSet(workdir / "sentinel")
            self.broker_url = self.sentinel.url
        self.ledger_server = RedisServer(workdir / "ledger", quiet_port(),
                                         "--appendfsync", "everysec")
        self.heartbeat_timeout = heartbeat_timeout
        self.result_ttl = result_ttl
        log_dir = workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [
            Node(name, workers=workers, redis_url=self.broker_url, log_dir=log_dir,
                 heartbeat_timeout=heartbeat_timeout, result_ttl=result_ttl,
                 tasks="chaos_tasks", cwd=HERE, queues=NODE_QUEUES[name],
                 env={"CHAOS_LEDGER_URL": self.ledger_server.url, "CHAOS_NODE": name,
                      # One node runs 8 jobs in flight per child (threads): the faults
                      # then hit children holding many jobs at once.
                      "SUPERVISOR_CONCURRENCY": "8" if index == 0 else "1",
                      "SUPERVISOR_WAIT_REPLICAS": str(self.wait_replicas)})
            for index, name in enumerate(list(NODE_QUEUES)[:size])
        ]

    def client(self) -> redis.Redis:
        if self.sentinel is not None:  # the current master, whichever it is
            from supervisor.broker.connection import connect

            return connect(self.broker_url, socket_timeout=5)
        return redis.Redis.from_url(self.broker.url, decode_responses=True, socket_timeout=5)

    def ledger(self) -> redis.Redis:
        return redis.Redis.from_url(self.ledger_server.url, decode_responses=True)

    def start(self) -> None:
        if self.sentinel is not None:
            self.sentinel.start()
            for server in self.sentinel.servers:  # replicas follow a new master at once
                self.sentinel.client(server.port).config_set("repl-diskless-sync-delay", 0)
        else:
            self.broker.start()
        self.ledger_server.start()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            if node.running:
                node.send(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=35)
            node.reap_group()
        if self.sentinel is not None:
            self.sentinel.stop()
        else:
            self.broker.stop()
        self.ledger_server.stop()
