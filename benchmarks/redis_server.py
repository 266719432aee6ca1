"""The benchmark's private Redis: started on a free loopback port, stopped after.

Reuses the test suite's server (tests/redis_server.py) with persistence off
(`--save "" --appendonly no`): throughput is measured without fsync cost,
for every system alike. Never touches a server it did not start.
"""

from __future__ import annotations

import sys
import tempfile
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


__all__ = ["PERSISTENCE", "Stats", "private_redis", "server_binary", "stats", "workload_calls"]
