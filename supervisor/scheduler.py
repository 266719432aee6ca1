"""Periodic (cron) jobs: fired by every node, enqueued once per tick.

Placeholder until the periodic-jobs issue lands: no schedules, nothing fires.
"""

from __future__ import annotations

from typing import Any, Protocol

from supervisor.config import Config


class Scheduler(Protocol):
    def tick(self, now: float) -> int:
        """Enqueue every schedule tick due at `now` (epoch seconds); return how many."""
        ...


def make_scheduler(config: Config, client: Any) -> Scheduler | None:
    """The scheduler for this worker, or None when there is nothing to schedule."""
    return None
