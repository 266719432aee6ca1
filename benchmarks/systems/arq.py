"""arq: two worker processes (arq has no pool of its own)."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _workers(launch: Launch) -> list[list[str]]:
    one = [launch.tool("arq"), "benchmarks.apps.arq_app.WorkerSettings"]
    return [list(one) for _ in range(launch.workers)]


SYSTEMS = [
    System("arq", "arq", "arq_app", "2 × arq worker (max_jobs 10 each)", _workers,
           requirements=("arq",)),
]
