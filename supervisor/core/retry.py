"""Job retry policies on tenacity: what to do after a failed attempt (a pure decision).

Job retries use tenacity's own strategies (`stop=`, `wait=`, `retry=`) but
not its loop: the worker asks the policy what to do after a failed attempt
and, when a wait is needed, writes the job back to the delayed set (durable
backoff: no sleeping inside the worker, nothing lost if it crashes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import tenacity
from tenacity import (
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from supervisor.errors import Reject, Retry

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
