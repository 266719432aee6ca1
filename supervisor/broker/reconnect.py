"""Retry policies on tenacity: per-task job retries, and Redis outage retrying.

Job retries use tenacity's own strategies (`stop=`, `wait=`, `retry=`) but
not its loop: the worker asks the policy what to do after a failed attempt
and, when a wait is needed, writes the job back to the delayed set (durable
backoff: no sleeping inside the worker, nothing lost if it crashes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity import (
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from supervisor.errors import Reject, Retry

log = logging.getLogger("supervisor.retry")
T = TypeVar("T")

DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """tenacity strategies for one task. Attempts are counted from 1."""

    stop: Any = stop_after_attempt(DEFAULT_ATTEMPTS)
    wait: Any = wait_exponential_jitter(multiplier=1, max=60)
    retry: Any = retry_if_exception_type(Exception)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt: retry after `delay` seconds, or give up."""

    retry: bool
    delay: float = 0.0


def _call_state(attempt: int, exc: BaseException, first_enqueued: float) -> Any:
    """A tenacity RetryCallState describing the failed attempt, for its strategies."""
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    now = time.monotonic()
    # Map wall-clock age of the job onto tenacity's monotonic start time so
    # stop_after_delay counts from the first enqueue, across retries and nodes.
    state.start_time = now - max(0.0, time.time() - first_enqueued)
    state.attempt_number = attempt
    state.outcome = tenacity.Future.construct(attempt, exc, True)
    state.outcome_timestamp = now
    return state


def decide(
    policy: RetryPolicy, attempt: int, exc: BaseException, first_enqueued: float
) -> Decision:
    """Apply the task's policy to a failed attempt.

    `Reject` never retries. `Retry` always asks for another attempt (its
    own delay wins over the wait strategy) but the stop strategy still
    applies, as with Celery's max_retries.
    """
    if isinstance(exc, Reject):
        return Decision(retry=False)
    state = _call_state(attempt, exc, first_enqueued)
    if policy.stop(state):
        return Decision(retry=False)
    if isinstance(exc, Retry):
        delay = exc.delay if exc.delay is not None else float(policy.wait(state))
        return Decision(retry=True, delay=max(0.0, delay))
    if not policy.retry(state):
        return Decision(retry=False)
    return Decision(retry=True, delay=max(0.0, float(policy.wait(state))))


class OutageLog:
    """Logs a Redis outage once when it starts and once when it ends."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.logger = logger
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.logger.warning("%s: Redis unavailable (%s); retrying with backoff", self.what, exc)

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
) -> T:
    """Run `fn`, retrying transient Redis errors with exponential backoff and jitter.

    Only for idempotent calls. Each wait is capped at `max_wait`; the whole
    retrying gives up after `give_up_after` seconds (None: until `should_stop`).
    The first try is a plain call: this sits on every enqueue and settle, and
    a tenacity loop costs tens of microseconds to set up.
    """
    try:
        result = fn()
    except transient as exc:
        if _never_transient(exc):
            raise
        outage.failed(exc)
    else:
        if outage.since is not None:
            outage.recovered()
        return result
    return _retry(fn, transient, outage, give_up_after, should_stop, max_wait)


def _never_transient(exc: BaseException) -> bool:
    # Imported here: this module is also imported by the master side, which
    # must not load redis. Wrong credentials are a redis ConnectionError too,
    # but waiting will not fix them.
    from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError

    return isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError)


def _retry(fn: Callable[[], T], transient: tuple[type[BaseException], ...], outage: OutageLog,
           give_up_after: float | None, should_stop: Callable[[], bool], max_wait: float) -> T:
    limit = (tenacity.stop_after_delay(give_up_after) if give_up_after is not None
             else tenacity.stop_never)
    stop: Any = tenacity.stop_any(limit, lambda _state: should_stop())  # type: ignore[arg-type]
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, transient) and not _never_transient(exc)),
        wait=wait_exponential_jitter(multiplier=0.05, max=max_wait, jitter=0.2),
        stop=stop,
        before_sleep=lambda state: outage.failed(state.outcome.exception()),  # type: ignore
        reraise=True,
    )
    result = retrying(fn)
    outage.recovered()
    return result
