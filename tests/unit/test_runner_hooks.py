"""The runner's hook call sites: one before and one after each attempt, whatever its end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tenacity import wait_fixed

from supervisor.api import middleware
from supervisor.api.registry import task
from supervisor.broker.streams import Delivery
from supervisor.config import Config
from supervisor.core.job import Job
from supervisor.core.middleware import AttemptInfo, Middleware
from supervisor.fork.status import ChildStatus
from supervisor.worker.runner import QuickStop, Runner


class Log(Middleware):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.calls.append(("before", attempt.job_id, attempt.attempt, dict(attempt.headers)))

    def after_attempt(self, attempt: AttemptInfo) -> None:
        self.calls.append(("after", attempt.outcome, type(attempt.error).__name__))

    def on_retry(self, attempt: AttemptInfo) -> None:
        self.calls.append(("retry", round(attempt.retry_in or 0)))

    def on_dead_letter(self, attempt: AttemptInfo) -> None:
        self.calls.append(("dead",))


@task(name="unit.hooked", max_retries=1, wait=wait_fixed(30))
def hooked(how: str) -> str:
    if how == "fail":
        raise ValueError("no")
    if how == "quit":
        raise QuickStop()  # what the worker's QUIT handler raises inside a task
    if how == "unserialisable":
        return {1, 2}  # type: ignore[return-value]
    return "ok"


@pytest.fixture
def log() -> Iterator[Log]:
    recorder = Log()
    middleware.use([recorder])
    yield recorder
    middleware.use([])


def run(how: str, attempt: int = 1) -> Any:
    job = Job(id=f"j-{how}", task="unit.hooked", queue="default", args=(how,),
              attempt=attempt, headers={"h": "1"})
    return Runner(Config(), "node/1/1.00", ChildStatus()).process(
        Delivery("default", "1-0", job.encode()))


def test_every_end_of_an_attempt_reaches_after_attempt(log: Log) -> None:
    run("ok")
    run("fail")
    run("fail", attempt=2)
    run("unserialisable")
    with pytest.raises(QuickStop):
        run("quit")
    assert log.calls == [
        ("before", "j-ok", 1, {"h": "1"}), ("after", "succeeded", "NoneType"),
        ("before", "j-fail", 1, {"h": "1"}), ("after", "retry", "ValueError"), ("retry", 30),
        ("before", "j-fail", 2, {"h": "1"}), ("after", "failed", "ValueError"), ("dead",),
        ("before", "j-unserialisable", 1, {"h": "1"}), ("after", "failed", "TypeError"),
        ("dead",),
        ("before", "j-quit", 1, {"h": "1"}), ("after", "interrupted", "NoneType"),
    ]


def test_without_middleware_the_runner_has_nothing_to_call() -> None:
    runner = Runner(Config(), "node/1/1.00", ChildStatus())
    assert not runner.hooks.attempts and runner.hooks is middleware.hooks_for(Config())
    assert run("ok").outcome.record
