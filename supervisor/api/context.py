"""What a running job sees of itself: its `Request`, and where its progress goes.

A `bind=True` task gets a TaskContext (api/task.py) holding the Request;
`self.progress()` reports through the sink a worker sets with set_progress_sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

# Where TaskContext.progress() reports (request, progress JSON): set by a worker
# (worker/progress.py); None in a producer, where progress is only kept locally.
progress_sink: Callable[[Request, str], None] | None = None


def set_progress_sink(sink: Callable[[Request, str], None] | None) -> None:
    """Route the progress of bound tasks run in this process (the worker calls this)."""
    global progress_sink
    progress_sink = sink


class Request(NamedTuple):
    """What a bound task sees of the job it is running (`self.request`)."""

    id: str
    task: str
    queue: str
    attempt: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    headers: dict[str, str] | None = None  # the job's headers (producers' and hooks')

    @property
    def retries(self) -> int:
        """Celery's name: how many retries happened before this attempt."""
        return self.attempt - 1
