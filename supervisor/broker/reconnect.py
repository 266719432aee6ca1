"""Riding out Redis outages: bounded retrying with tenacity, logged once per outage.

Only for idempotent calls (enqueue by job id, settle of entries still
pending for the caller): a retry after a lost reply writes nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError
from tenacity import wait_exponential_jitter

log = logging.getLogger("supervisor.retry")
T = TypeVar("T")


class OutageLog:
    """Logs a Redis outage once when it starts and once when it ends."""

    def __init__(self, what: str, logger: logging.Logger = log,
                 explain: Callable[[BaseException], str | None] = lambda exc: None) -> None:
        self.what = what
        self.logger = logger
        self.explain = explain  # a sentence for errors that say little by themselves
        self.since: float | None = None
        self.cause: BaseException | None = None  # what started the outage

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.cause = exc
            self.since = time.monotonic()
            said = self.explain(exc)
            if said:
                self.logger.warning("%s: %s; retrying with backoff", self.what, said)
            else:
                self.logger.warning("%s: Redis unavailable (%s); retrying with backoff",
                                    self.what, exc)

    def recovered(self) -> None:
        if self.since is not None:
            self.logger.warning(
                "%s: Redis reachable again after %.1fs", self.what, time.monotonic() - self.since
            )
            self.since = None


def call_with_reconnect(
    fn: Callable[[], T],
    transient: tuple[type[BaseException], ...],
    outage: OutageLog,
    *,
    give_up_after: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_wait: float = 2.0,
    also: Callable[[BaseException], bool] | None = None,
) -> T:
    """Run `fn`, retrying transient Redis errors with exponential backoff and jitter.

    Only for idempotent calls. Each wait is capped at `max_wait`; the whole
    retrying gives up after `give_up_after` seconds (None: until `should_stop`).
    `also` names more errors worth waiting out (a worker waits out a Redis
    that refuses writes for now). The first try is a plain call: this sits on
    every enqueue and settle, and a tenacity loop costs tens of microseconds
    to set up.
    """

    def worth_waiting(exc: BaseException) -> bool:
        if _never_transient(exc):
            return False
        return isinstance(exc, transient) or (also is not None and also(exc))

    try:
        result = fn()
    except Exception as exc:
        if not worth_waiting(exc):
            raise
        outage.failed(exc)
    else:
        if outage.since is not None:
            outage.recovered()
        return result
    return _retry(fn, worth_waiting, outage, give_up_after, should_stop, max_wait)


def _never_transient(exc: BaseException) -> bool:
    # Wrong credentials are a redis ConnectionError too, but waiting will not fix them.
    return isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError)


def _retry(fn: Callable[[], T], worth_waiting: Callable[[BaseException], bool],
           outage: OutageLog, give_up_after: float | None, should_stop: Callable[[], bool],
           max_wait: float) -> T:
    limit = (tenacity.stop_after_delay(give_up_after) if give_up_after is not None
             else tenacity.stop_never)
    stop: Any = tenacity.stop_any(limit, lambda _state: should_stop())  # type: ignore[arg-type]
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(worth_waiting),
        wait=wait_exponential_jitter(multiplier=0.05, max=max_wait, jitter=0.2),
        stop=stop,
        before_sleep=lambda state: outage.failed(state.outcome.exception()),  # type: ignore
        reraise=True,
    )
    result = retrying(fn)
    outage.recovered()
    return result
