"""taskiq with taskiq-redis's stream broker: `taskiq worker --workers 2`."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.systems.base import IO_SLOTS, Launch, System


def _worker(*extra: str) -> Callable[[Launch], list[list[str]]]:
    def commands(launch: Launch) -> list[list[str]]:
        return [[launch.tool("taskiq"), "worker", "benchmarks.apps.taskiq_app:broker",
                 "--workers", str(launch.workers), *extra, "--log-level", "WARNING"]]

    return commands


REQUIREMENTS = ("taskiq", "taskiq-redis")

SYSTEMS = [
    System("taskiq", "taskiq", "taskiq_app", "taskiq worker --workers 2, RedisStreamBroker",
           _worker(), requirements=REQUIREMENTS),
    System("taskiq-io", "taskiq", "taskiq_app",
           f"taskiq worker --workers 2 --max-async-tasks {IO_SLOTS}, RedisStreamBroker, "
           "async task", _worker("--max-async-tasks", str(IO_SLOTS)),
           requirements=REQUIREMENTS, table="io"),
]
