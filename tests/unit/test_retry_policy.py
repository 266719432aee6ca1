"""Retry decisions with tenacity strategies (no Redis, no sleeping)."""

from __future__ import annotations

import time

from tenacity import retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_fixed

from supervisor.api.registry import task
from supervisor.core.retry import RetryPolicy, decide
from supervisor.errors import Reject, Retry


def test_default_policy_three_attempts_exponential() -> None:
    policy = RetryPolicy()
    first = decide(policy, 1, ValueError(), time.time())
    second = decide(policy, 2, ValueError(), time.time())
    assert first.retry and 1.0 <= first.delay <= 2.0
    assert second.retry and 2.0 <= second.delay <= 3.0
    assert not decide(policy, 3, ValueError(), time.time()).retry


def test_custom_strategies() -> None:
    policy = RetryPolicy(stop=stop_after_attempt(5), wait=wait_fixed(7),
                         retry=retry_if_exception_type(IOError))
    assert decide(policy, 4, OSError(), time.time()).delay == 7
    assert not decide(policy, 1, KeyError(), time.time()).retry
    assert not decide(policy, 5, OSError(), time.time()).retry


def test_stop_after_delay_counts_from_first_enqueue() -> None:
    policy = RetryPolicy(stop=stop_after_delay(60))
    assert decide(policy, 1, ValueError(), time.time() - 10).retry
    assert not decide(policy, 1, ValueError(), time.time() - 120).retry


def test_retry_and_reject() -> None:
    policy = RetryPolicy(stop=stop_after_attempt(2))
    assert decide(policy, 1, Retry(delay=0.5), time.time()).delay == 0.5
    assert not decide(policy, 2, Retry(delay=0.5), time.time()).retry
    assert not decide(RetryPolicy(), 1, Reject("no"), time.time()).retry


def test_max_retries_shorthand_and_names() -> None:
    @task(max_retries=3, queue="q")
    def shorthand() -> None: ...

    assert shorthand.name.endswith("test_retry_policy.test_max_retries_shorthand_and_names"
                                   ".<locals>.shorthand")
    assert decide(shorthand.policy, 3, ValueError(), time.time()).retry
    assert not decide(shorthand.policy, 4, ValueError(), time.time()).retry
