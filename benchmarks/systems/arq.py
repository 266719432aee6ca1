"""arq: two worker processes (arq has no pool of its own)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.systems.base import IO_SLOTS, Launch, System


def _workers(settings: str) -> Callable[[Launch], list[list[str]]]:
    def commands(launch: Launch) -> list[list[str]]:
        one = [launch.tool("arq"), f"benchmarks.apps.arq_app.{settings}"]
        return [list(one) for _ in range(launch.workers)]

    return commands


SYSTEMS = [
    System("arq", "arq", "arq_app", "2 × arq worker (max_jobs 10 each)",
           _workers("WorkerSettings"), requirements=("arq",)),
    System("arq-io", "arq", "arq_app", f"2 × arq worker, max_jobs={IO_SLOTS}, async task",
           _workers("IOWorkerSettings"), requirements=("arq",), table="io"),
]
