"""huey: the consumer with two worker processes."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _consumer(launch: Launch) -> list[list[str]]:
    return [[launch.tool("huey_consumer"), "benchmarks.apps.huey_app.huey",
             "-k", "process", "-w", str(launch.workers), "--quiet"]]


SYSTEMS = [
    System("huey", "huey", "huey_app", "huey_consumer -k process -w 2", _consumer,
           requirements=("huey", "redis")),
]
