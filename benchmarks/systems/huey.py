"""huey: the consumer with two worker processes; for the IO table, two thread consumers."""

from __future__ import annotations

from benchmarks.systems.base import IO_SLOTS, Launch, System


def _consumer(launch: Launch) -> list[list[str]]:
    return [[launch.tool("huey_consumer"), "benchmarks.apps.huey_app.huey",
             "-k", "process", "-w", str(launch.workers), "--quiet"]]


def _thread_consumers(launch: Launch) -> list[list[str]]:
    """huey's workers are processes or threads, never both: one consumer process per
    worker, IO_SLOTS threads each. Only the first runs the periodic-task scheduler
    (there are none here; two schedulers would enqueue each periodic task twice)."""
    one = [launch.tool("huey_consumer"), "benchmarks.apps.huey_app.huey",
           "-k", "thread", "-w", str(IO_SLOTS), "--quiet"]
    return [one + ([] if number == 0 else ["--no-periodic"])
            for number in range(launch.workers)]


REQUIREMENTS = ("huey", "redis")

SYSTEMS = [
    System("huey", "huey", "huey_app", "huey_consumer -k process -w 2", _consumer,
           requirements=REQUIREMENTS),
    System("huey-io", "huey", "huey_app",
           f"2 × huey_consumer -k thread -w {IO_SLOTS} (second --no-periodic)",
           _thread_consumers, requirements=REQUIREMENTS, table="io"),
]
