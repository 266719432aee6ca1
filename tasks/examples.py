"""Example tasks used by the README, `make run` and the tests.

Run them with: supervisor run --tasks tasks.examples --queues default,reports
"""

from __future__ import annotations

import random
import time

from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from supervisor import Reject, TaskContext, task


@task
def add(x: int, y: int) -> int:
    return x + y


class TemporaryGlitch(IOError):
    """Stands in for a flaky network call."""


@task(bind=True, max_retries=3)
def process_data(self: TaskContext, data: list[float]) -> dict[str, float]:
    """The classic Celery example: retry with a countdown on a transient error."""
    try:
        # A glitch now and then, on a first attempt only: the retry always gets
        # through, so the demo's one dead letter is the one it shows on purpose
        # (failing any attempt at random dead-lettered a second job in ~8 % of runs).
        if self.request.attempt == 1 and random.random() < 0.2:
            raise TemporaryGlitch("upstream timed out")
        return {"count": len(data), "total": sum(data)}
    except TemporaryGlitch as exc:
        raise self.retry(exc=exc, countdown=0.2) from exc


@task(
    queue="reports",
    timeout=30,
    stop=stop_after_attempt(5),
    wait=wait_exponential_jitter(multiplier=0.1, max=1),
    retry=retry_if_exception_type(IOError),
)
def build_report(day: str) -> str:
    """A slower job on its own queue with a tenacity policy."""
    time.sleep(0.05)
    if not day:
        raise Reject("a report needs a day")
    return f"report for {day}: ok"


@task(bind=True, stop=stop_after_attempt(4),
      wait=wait_exponential_jitter(multiplier=0.05, max=0.2, jitter=0.05))
def flaky(self: TaskContext, succeed_on: int = 3) -> int:
    """Fails until attempt `succeed_on`, then succeeds: shows retries end to end."""
    if self.request.attempt < succeed_on:
        raise TemporaryGlitch(f"attempt {self.request.attempt} failed on purpose")
    return self.request.attempt


@task(timeout=60)
def slow(seconds: float = 1.0) -> float:
    time.sleep(seconds)
    return seconds
