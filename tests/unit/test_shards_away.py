"""ShardsAway: which queues a worker on a cluster skips while their shard does not answer."""

from __future__ import annotations

import logging

import pytest
import redis

from supervisor.broker.shards_away import RETRY_AFTER, ShardsAway, unreachable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


DOWN = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:7002")


def test_a_queue_whose_shard_failed_is_skipped_then_tried_again_after_the_pause() -> None:
    clock = FakeClock()
    away = ShardsAway(clock)
    away.failed("b", DOWN)
    assert away.reachable(["a", "b", "c"]) == ["a", "c"]
    clock.now += RETRY_AFTER - 0.01
    assert away.reachable(["a", "b", "c"]) == ["a", "c"]
    clock.now += 0.02
    assert away.reachable(["a", "b", "c"]) == ["a", "b", "c"]  # its turn to be tried again


def test_when_every_queue_is_away_all_are_tried_so_the_caller_meets_the_error() -> None:
    away = ShardsAway(FakeClock())
    away.failed("a", DOWN)
    away.failed("b", DOWN)
    assert away.reachable(["a", "b"]) == ["a", "b"]


def test_each_goes_on_past_a_shard_that_does_not_answer_and_skips_it_next_time() -> None:
    away = ShardsAway(FakeClock())
    calls: list[str] = []

    def call(queue: str) -> int:
        calls.append(queue)
        if queue == "b":
            raise DOWN
        return len(queue)

    assert away.each(["a", "b", "cc"], call) == [1, 2]
    assert away.each(["a", "b", "cc"], call) == [1, 2]
    assert calls == ["a", "b", "cc", "a", "cc"]  # b skipped the second time


def test_each_raises_when_no_shard_answered() -> None:
    away = ShardsAway(FakeClock())

    def call(queue: str) -> int:
        raise DOWN

    with pytest.raises(redis.exceptions.ConnectionError):
        away.each(["a", "b"], call)


def test_other_errors_are_not_a_shard_away() -> None:
    away = ShardsAway(FakeClock())

    def call(queue: str) -> int:
        raise redis.exceptions.ResponseError("OOM command not allowed")

    with pytest.raises(redis.exceptions.ResponseError):
        away.each(["a"], call)
    assert away.until == {}
    assert unreachable(redis.exceptions.TimeoutError()) and not unreachable(None)


def test_a_shard_leaving_and_coming_back_is_logged_once_each(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    away = ShardsAway(clock)
    with caplog.at_level(logging.WARNING, "supervisor.broker"):
        away.failed("b", DOWN)
        clock.now += RETRY_AFTER
        away.failed("b", DOWN)  # still away: no second warning
        away.answered("b")
        away.answered("b")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "the shard of queue b does not answer" in messages[0]
    assert "answers again" in messages[1]
