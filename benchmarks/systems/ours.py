"""Ours: the master with `--workers N` prefork children, from the project venv."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _run(launch: Launch) -> list[list[str]]:
    return [[launch.python, "-m", "supervisor", "run", "--workers", str(launch.workers),
             "--tasks", "benchmarks.apps.ours_app", "--queues", "default",
             "--redis-url", launch.redis_url, "--log-level", "WARNING"]]


SYSTEMS = [
    System("ours", "ours", "ours_app", "supervisor run --workers 2 (results stored)", _run),
    System("ours-noresult", "ours", "ours_app",
           "supervisor run --workers 2, ignore_result=True tasks", _run, variant="noresult"),
]
