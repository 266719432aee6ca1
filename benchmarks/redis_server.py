"""The benchmark's private Redis: started on a free loopback port, stopped after.

Reuses the test suite's server (tests/redis_server.py) with persistence off
(`--save "" --appendonly no`): throughput is measured without fsync cost,
for every system alike. Never touches a server it did not start.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer, server_binary  # noqa: E402

PERSISTENCE = "persistence off: --save '' --appendonly no"
HARNESS_COMMANDS = ("info", "config|resetstat", "flushall", "ping", "hello", "client|setinfo",
                    "client|setname")


@dataclass(frozen=True, slots=True)
class Stats:
    """The Redis-side counters the harness reads before and after a run."""

    cpu: float  # seconds, used_cpu_user + used_cpu_sys
    calls: dict[str, int]  # command -> calls (commandstats; includes calls inside scripts)

    def minus(self, before: Stats) -> tuple[float, dict[str, int]]:
        calls = {name: count - before.calls.get(name, 0) for name, count in self.calls.items()}
        return self.cpu - before.cpu, {name: n for name, n in calls.items() if n}


def stats(client: redis.Redis) -> Stats:
    info = client.info("cpu")
    commands = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"])
             for name, value in commands.items()}
    return Stats(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]), calls)


def workload_calls(calls: dict[str, int], harness_gets: int) -> dict[str, int]:
    """Commands the systems sent: the harness's own INFO/GET polling removed."""
    result = {name: n for name, n in calls.items() if name not in HARNESS_COMMANDS}
    if "get" in result:
        result["get"] -= harness_gets
        if result["get"] <= 0:
            del result["get"]
    return result


@contextmanager
def private_redis() -> Iterator[tuple[RedisServer, str]]:
    """A fresh server for the whole benchmark; (server, version)."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data:
        server = RedisServer(Path(data), None, "--appendonly", "no", "--appendfsync",
                             "everysec", "--save", "")
        server.start()
        try:
            client = redis.Redis(port=server.port)
            version = str(client.info("server")["redis_version"])
            client.close()
            yield server, version
        finally:
            server.stop()


CLUSTER_MASTERS = 3


@contextmanager
def private_cluster(masters: int = CLUSTER_MASTERS) -> Iterator[tuple[str, list[int]]]:
    """A fresh Redis Cluster of `masters` shards (no replicas, persistence off) for the
    cluster row; (redis+cluster:// URL, the masters' ports). Needs redis-cli."""
    import shutil
    import subprocess

    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is needed to create a cluster")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as data:
        ports: list[int] = []
        for _ in range(masters):
            ports.append(_cluster_port(ports))
        servers = [RedisServer(Path(data) / f"node-{i}", port, "--appendonly", "no",
                               "--save", "", "--cluster-enabled", "yes",
                               "--cluster-config-file", "nodes.conf")
                   for i, port in enumerate(ports)]
        try:
            for server in servers:
                server.start()
            subprocess.run([cli, "--cluster", "create",
                            *(f"127.0.0.1:{server.port}" for server in servers),
                            "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=60)
            deadline = time.monotonic() + 30
            while not all(redis.Redis(port=server.port, decode_responses=True).cluster("info")
                          .get("cluster_state") == "ok" for server in servers):
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark cluster did not become ready")
                time.sleep(0.1)
            ports = [server.port for server in servers]
            yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports), ports
        finally:
            for server in servers:
                server.stop()


def _cluster_port(taken: list[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too, not one of `taken` (drawn
    for the other nodes, not listening yet)."""
    import random
    import socket

    for _ in range(500):
        port = random.randint(20000, 29999)
        if port in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


__all__ = ["PERSISTENCE", "Stats", "private_cluster", "private_redis", "server_binary", "stats",
           "workload_calls"]
