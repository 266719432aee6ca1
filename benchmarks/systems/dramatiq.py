"""Dramatiq: --processes 2 with its default threads (8), with --threads 1, and with
--threads 16 for the IO table."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.systems.base import IO_SLOTS, Launch, System


def _worker(threads: int | None) -> Callable[[Launch], list[list[str]]]:
    def commands(launch: Launch) -> list[list[str]]:
        argv = [launch.tool("dramatiq"), "benchmarks.apps.dramatiq_app",
                "--processes", str(launch.workers)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        return [argv]

    return commands


REQUIREMENTS = ("dramatiq[redis]",)

SYSTEMS = [
    System("dramatiq", "dramatiq", "dramatiq_app", "dramatiq --processes 2 (8 threads each)",
           _worker(None), requirements=REQUIREMENTS),
    System("dramatiq-1thread", "dramatiq", "dramatiq_app", "dramatiq --processes 2 --threads 1",
           _worker(1), requirements=REQUIREMENTS, primary=False),
    System("dramatiq-io", "dramatiq", "dramatiq_app",
           f"dramatiq --processes 2 --threads {IO_SLOTS}", _worker(IO_SLOTS),
           requirements=REQUIREMENTS, table="io"),
]
