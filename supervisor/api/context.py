"""What a running job sees of itself: its `Request`, and the `TaskContext` of a bound task.

A `bind=True` task gets a TaskContext first (`self.request.id`, `self.retry()`,
`self.progress()`); the worker routes progress reports with set_progress_sink.
The Task that makes a context lives in api/registry.py, which imports this
module, so the context names its task only by what it offers (Submittable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor.core import jsonio
from supervisor.errors import Retry

if TYPE_CHECKING:
    from supervisor.api.producer import Submittable

# Where TaskContext.progress() reports (request, progress JSON): set by a worker
# (worker/progress.py); None in a producer, where progress is only kept locally.
_progress_sink: Callable[[Request, str], None] | None = None


def set_progress_sink(sink: Callable[[Request, str], None] | None) -> None:
    """Route the progress of bound tasks run in this process (the worker calls this)."""
    global _progress_sink
    _progress_sink = sink


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


class TaskContext:
    """The first argument of a `bind=True` task, as in Celery."""

    def __init__(self, task: Submittable, request: Request) -> None:
        self.task = task
        self.request = request
        self.name = task.name
        self.last_progress: str | None = None  # JSON of the last progress() call

    def progress(self, value: Any, meta: Any = None) -> None:
        """Report how far the job got: `value` a fraction 0-1 or any JSON value, `meta` any
        JSON value beside it. Cheap to call in a tight loop: the worker keeps the latest
        and writes it about once a second (`result.progress`, `supervisor job`, `status`
        show it; the job's record keeps the last one when it ends)."""
        try:
            text = jsonio.dumps({"value": value, "meta": meta, "at": time.time()})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"progress of {self.name} is not JSON-serialisable: {exc}") from None
        self.last_progress = text
        sink = _progress_sink
        if sink is not None:
            sink(self.request, text)

    def retry(self, exc: BaseException | None = None, countdown: float | None = None) -> Retry:
        """Ask for another attempt after `countdown` seconds.

        Raises `Retry`; write `raise self.retry(...)` as in Celery, or just call it.
        """
        raise Retry(delay=countdown, exc=exc)
