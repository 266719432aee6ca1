"""Every system the harness can run, ours first."""

from __future__ import annotations

from benchmarks.systems import arq, celery, dramatiq, huey, ours, rq, taskiq
from benchmarks.systems.base import Launch, System

ALL: list[System] = [
    *ours.SYSTEMS, *celery.SYSTEMS, *rq.SYSTEMS, *dramatiq.SYSTEMS, *huey.SYSTEMS,
    *arq.SYSTEMS, *taskiq.SYSTEMS,
]

__all__ = ["ALL", "Launch", "System"]
