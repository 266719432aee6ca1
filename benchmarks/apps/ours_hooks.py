"""A middleware that does nothing, for the `ours-hook` row: the price of hooking every job.

It hooks before and after each attempt (the shape of a tracing or metrics
middleware), so the row pays for building the attempt's info and two calls.
"""

from __future__ import annotations

from supervisor import AttemptInfo, Middleware


class NoOp(Middleware):
    def before_attempt(self, attempt: AttemptInfo) -> None:
        return None

    def after_attempt(self, attempt: AttemptInfo) -> None:
        return None
