"""Ours: the master with `--workers N` prefork children, from the project venv."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.systems.base import IO_SLOTS, Launch, Needs, System


def _run(*extra: str) -> Callable[[Launch], list[list[str]]]:
    def commands(launch: Launch) -> list[list[str]]:
        return [[launch.python, "-m", "supervisor", "run", "--workers", str(launch.workers),
                 *extra, "--tasks", "benchmarks.apps.ours_app", "--queues", "default",
                 "--redis-url", launch.redis_url, "--log-level", "WARNING"]]

    return commands


def _help(launch: Launch) -> list[str]:
    return [launch.python, "-m", "supervisor", "run", "--help"]


# Many jobs in flight per child (issue 14): lit once `supervisor run` has the option.
CONCURRENCY = Needs(("--concurrency",), _help)
_concurrent = _run("--concurrency", str(IO_SLOTS))

# Hooks (issue 20): one no-op middleware around every attempt, against the `ours` row.
HOOKS = Needs(("--middleware",), _help)

SYSTEMS = [
    System("ours", "ours", "ours_app", "supervisor run --workers 2 (results stored)", _run()),
    System("ours-hook", "ours", "ours_app",
           "supervisor run --workers 2 --middleware (one no-op before/after each attempt)",
           _run("--middleware", "benchmarks.apps.ours_hooks:NoOp"), needs=HOOKS),
    System("ours-cluster", "ours", "ours_app",
           "supervisor run --workers 2 on a 3-shard Redis Cluster (redis+cluster://; the "
           "queue lives on one shard)", _run(), primary=False, broker="cluster"),
    System("ours-noresult", "ours", "ours_app",
           "supervisor run --workers 2, ignore_result=True tasks", _run(), variant="noresult"),
    System("ours-io-sync", "ours", "ours_app",
           f"supervisor run --workers 2 --concurrency {IO_SLOTS}, sync task (threads)",
           _concurrent, table="io", needs=CONCURRENCY),
    System("ours-io-async", "ours", "ours_app",
           f"supervisor run --workers 2 --concurrency {IO_SLOTS}, async def task (event loop)",
           _concurrent, variant="async", table="io", needs=CONCURRENCY),
    System("ours-io-k1", "ours", "ours_app",
           "supervisor run --workers 2 (no --concurrency: one job at a time per child), "
           "sync task", _run(), table="io"),
]
