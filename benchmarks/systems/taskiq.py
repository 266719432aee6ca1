"""taskiq with taskiq-redis's stream broker: `taskiq worker --workers 2`."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _worker(launch: Launch) -> list[list[str]]:
    return [[launch.tool("taskiq"), "worker", "benchmarks.apps.taskiq_app:broker",
             "--workers", str(launch.workers), "--log-level", "WARNING"]]


SYSTEMS = [
    System("taskiq", "taskiq", "taskiq_app", "taskiq worker --workers 2, RedisStreamBroker",
           _worker, requirements=("taskiq", "taskiq-redis")),
]
