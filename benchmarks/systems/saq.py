"""saq: `saq SETTINGS --workers 2`, concurrency IO_SLOTS per worker (IO table only)."""

from __future__ import annotations

from benchmarks.systems.base import IO_SLOTS, Launch, System


def _workers(launch: Launch) -> list[list[str]]:
    return [[launch.tool("saq"), "benchmarks.apps.saq_app.settings",
             "--workers", str(launch.workers)]]


SYSTEMS = [
    System("saq-io", "saq", "saq_app",
           f"saq --workers 2, concurrency {IO_SLOTS} each, async task", _workers,
           requirements=("saq[redis,hiredis]", "typing_extensions"), table="io"),
]
