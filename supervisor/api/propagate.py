"""Headers that follow the work: jobs enqueued while a job runs inherit its headers.

    configure(middleware=[PropagateHeaders("tenant", "request-id")])   # or none named: all

While an attempt runs, its headers are the current ones (a context
variable: per thread, and per asyncio task, so several jobs at once in one
process never see each other's); a job enqueued meanwhile (the next step
of a pipeline, a fan-out) gets those of them it does not set itself. A
workflow's next step will carry them the same way, since it is enqueued on
behalf of the finishing job.
"""

from __future__ import annotations

import contextvars

from supervisor.core.middleware import AttemptInfo, EnqueueInfo, Middleware

_current: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "supervisor_job_headers", default=None)
_TOKEN = "supervisor.api.propagate"


class PropagateHeaders(Middleware):
    """Copy the running job's headers (all, or the `names` given) into the jobs it enqueues."""

    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)

    def before_attempt(self, attempt: AttemptInfo) -> None:
        headers = dict(attempt.headers)
        if self.names:
            headers = {k: v for k, v in headers.items() if k in self.names}
        attempt.state[_TOKEN] = _current.set(headers)

    def after_attempt(self, attempt: AttemptInfo) -> None:
        token = attempt.state.pop(_TOKEN, None)
        if token is not None:
            _current.reset(token)

    def before_enqueue(self, job: EnqueueInfo) -> None:
        inherited = _current.get()
        if inherited:
            for name, value in inherited.items():
                job.headers.setdefault(name, value)  # the caller's own win


def current_headers() -> dict[str, str]:
    """The headers of the job running in this thread or task ({} outside one), as
    PropagateHeaders keeps them (only while it is registered)."""
    return dict(_current.get() or {})
