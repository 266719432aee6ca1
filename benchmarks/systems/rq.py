"""RQ: the forking worker-pool, and two SimpleWorkers (no fork per job)."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _pool(launch: Launch) -> list[list[str]]:
    return [[launch.tool("rq"), "worker-pool", "--num-workers", str(launch.workers),
             "--url", launch.redis_url, "--logging-level", "WARNING", "default"]]


def _simple(launch: Launch) -> list[list[str]]:
    one = [launch.tool("rq"), "worker", "--worker-class", "rq.worker.SimpleWorker",
           "--url", launch.redis_url, "--logging_level", "WARNING", "default"]
    return [list(one) for _ in range(launch.workers)]


SYSTEMS = [
    System("rq-pool", "rq", "rq_app", "rq worker-pool -n 2 (fork per job)", _pool,
           requirements=("rq",), primary=False),
    System("rq-simple", "rq", "rq_app", "2 × rq worker --worker-class SimpleWorker", _simple,
           requirements=("rq",)),
]

# Why RQ has no row in the IO-bound table.
IO_LEFT_OUT = ("one job at a time per worker process (a fork per job, or SimpleWorker): no "
               "threads or event loop, so 16 jobs in flight per process cannot be set")
