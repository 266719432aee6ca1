"""Every system the harness can run, ours first."""

from __future__ import annotations

from benchmarks.systems import arq, celery, dramatiq, huey, ours, rq, saq, taskiq
from benchmarks.systems.base import Launch, System

ALL: list[System] = [
    *ours.SYSTEMS, *celery.SYSTEMS, *rq.SYSTEMS, *dramatiq.SYSTEMS, *huey.SYSTEMS,
    *arq.SYSTEMS, *taskiq.SYSTEMS, *saq.SYSTEMS,
]

# Peers without a row in the IO-bound table, and why.
IO_LEFT_OUT: dict[str, str] = {"rq": rq.IO_LEFT_OUT}

__all__ = ["ALL", "IO_LEFT_OUT", "Launch", "System"]
