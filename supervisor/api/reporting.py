"""Sending failed attempts to an error reporter (Sentry, Rollbar, a log service).

    import sentry_sdk
    from supervisor import configure
    from supervisor.api.reporting import ReportErrors

    def to_sentry(error, job):
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("task", job["task"])
            scope.set_context("job", job)
            sentry_sdk.capture_exception(error)

    configure(middleware=[ReportErrors(to_sentry)])

No dependency of ours: the reporter is any callable `(error, job)`, where
`job` is the attempt's context as plain data (`AttemptInfo.fields()`: job
id, task, queue, attempt, worker, outcome "retry" or "failed", headers,
arguments). Only failures are sent: a job stopped by its cancel (outcome
"cancelled") or cut short by a quick stop ("interrupted") is an operator's
decision, not an error, and is not reported. It runs in the worker, in the
thread of the attempt, after the attempt and before its outcome is written;
a reporter that raises is logged and the job goes on (core/middleware.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.core.middleware import FAILED, RETRY, AttemptInfo, Middleware

Reporter = Callable[[BaseException, dict[str, Any]], object]


class ReportErrors(Middleware):
    """Report each failed attempt (`retries=False`: only those that are dead-lettered)."""

    def __init__(self, report: Reporter, *, retries: bool = True,
                 drop_arguments: bool = False) -> None:
        self.report = report
        self.retries = retries
        self.drop_arguments = drop_arguments  # arguments may hold personal data

    def after_attempt(self, attempt: AttemptInfo) -> None:
        error = attempt.error
        # Failures only: a cancel (JobCancelled) or a quick stop is not an error.
        if error is None or attempt.outcome not in (RETRY, FAILED):
            return
        if attempt.outcome == RETRY and not self.retries:
            return
        job = attempt.fields()
        if self.drop_arguments:
            del job["args"], job["kwargs"]
        self.report(error, job)
