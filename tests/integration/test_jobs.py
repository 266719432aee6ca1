"""Enqueue, consume, results, retries and dead letters against a real worker process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sample_tasks
from helpers import wait_until

from supervisor import TaskFailed
from supervisor.api.result import AsyncResult
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")


def starts(client: redis.Redis, job_id: str) -> list[float]:
    return [float(value) for value in client.lrange(f"t:starts:{job_id}", 0, -1)]


def dead_letter(client: redis.Redis, queue: str = "default") -> list[dict[str, Any]]:
    return [json.loads(fields["m"]) for _, fields in client.xrange(keys.dead(queue))]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def test_positional_and_keyword_arguments(start_worker: Callable[..., Any]) -> None:
    start_worker()
    first = sample_tasks.echo.delay(4, 5)
    second = sample_tasks.echo.apply_async(args=("a",), kwargs={"y": {"nested": [1, 2]}})
    assert first.get(timeout=15) == [4, 5]
    assert second.get(timeout=15) == ["a", {"nested": [1, 2]}]
    assert first.state == "succeeded"


def test_plain_call_runs_locally() -> None:
    assert sample_tasks.echo(1, 2) == [1, 2]


def test_countdown_and_eta_never_run_early(start_worker: Callable[..., Any],
                                           client: redis.Redis) -> None:
    start_worker()
    enqueued = time.time()
    later = sample_tasks.stamp.apply_async(countdown=1.0)
    eta = datetime.now(UTC) + timedelta(seconds=1.5)
    at_eta = sample_tasks.stamp.apply_async(eta=eta)
    assert later.state == "scheduled"
    assert later.get(timeout=15) >= enqueued + 1.0
    assert at_eta.get(timeout=15) >= eta.timestamp()


def test_default_policy_three_attempts_with_growing_backoff(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    start_worker()
    result = sample_tasks.always_fails.delay()
    with pytest.raises(TaskFailed) as failure:
        result.get(timeout=30)
    assert failure.value.exc_type == "ValueError" and failure.value.reason == "error"
    times = starts(client, result.id)
    assert len(times) == 3
    # wait_exponential_jitter(initial=1): at least 1 s, then at least 2 s.
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 2.0
    [letter] = dead_letter(client)
    assert (letter["id"], letter["reason"], letter["attempts"]) == (result.id, "error", 3)
    assert "ValueError: attempt 3 fails" in letter["traceback"]


def test_custom_tenacity_policy(start_worker: Callable[..., Any], client: redis.Redis) -> None:
    start_worker()
    retried = sample_tasks.custom_policy.delay("value")
    not_retried = sample_tasks.custom_policy.delay("type")
    with pytest.raises(TaskFailed):
        retried.get(timeout=20)
    with pytest.raises(TaskFailed) as failure:
        not_retried.get(timeout=20)
    assert failure.value.exc_type == "TypeError"
    times = starts(client, retried.id)
    assert len(times) == 4
    assert all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
    assert len(starts(client, not_retried.id)) == 1


def test_retry_and_reject(start_worker: Callable[..., Any], client: redis.Redis) -> None:
    start_worker()
    asked = sample_tasks.asks_retry.delay()
    rejected = sample_tasks.rejects.delay()
    assert asked.get(timeout=15) == 3
    assert len(starts(client, asked.id)) == 3
    with pytest.raises(TaskFailed) as failure:
        rejected.get(timeout=15)
    assert failure.value.reason == "rejected" and "not today" in failure.value.message
    assert [letter["reason"] for letter in dead_letter(client)] == ["rejected"]


def test_timeout_is_a_failure_with_reason_timeout(start_worker: Callable[..., Any],
                                                  client: redis.Redis) -> None:
    start_worker()
    result = sample_tasks.overruns.delay(5.0)
    with pytest.raises(TaskFailed) as failure:
        result.get(timeout=15)
    assert failure.value.reason == "timeout" and failure.value.exc_type == "JobTimeout"
    assert dead_letter(client)[0]["reason"] == "timeout"


def test_messages_that_cannot_run_are_dead_lettered_as_invalid(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    from supervisor.api.producer import current_producer

    start_worker(SUPERVISOR_UNKNOWN_TASK_WAIT="0")  # dead-letter unknown tasks at once
    unknown = current_producer().submit_named("sample_tasks.nope", "default", (1,), {})
    bad_args = sample_tasks.echo.apply_async(args=(1, 2, 3))
    client.xadd(keys.stream("default"), {"m": "{not json"})
    client.xadd(keys.stream("default"), {"m": json.dumps({"v": 1, "id": "x1", "task": 5})})
    unserialisable = sample_tasks.bad_result.delay()
    follow_up = sample_tasks.echo.delay("still", "working")
    assert follow_up.get(timeout=15) == ["still", "working"]
    for result in (unknown, bad_args):
        with pytest.raises(TaskFailed) as failure:
            result.get(timeout=15)
        assert failure.value.reason == "invalid"
    with pytest.raises(TaskFailed) as failure:
        unserialisable.get(timeout=15)
    assert "JSON" in failure.value.message
    letters = wait_until(lambda: len(dead_letter(client)) == 5 and dead_letter(client),
                         what="five dead letters")
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == ["error", "invalid", "invalid", "invalid", "invalid"]
    messages = " ".join(letter["message"] for letter in letters)
    assert "not registered" in messages and "not valid JSON" in messages
    assert "arguments do not fit" in messages


def test_results_expire_with_their_ttl(start_worker: Callable[..., Any],
                                       client: redis.Redis) -> None:
    start_worker()
    result = sample_tasks.short_lived.delay()
    assert result.get(timeout=15) == "gone soon"
    wait_until(lambda: not client.exists(keys.job("default", result.id)), timeout=5,
               what="result key expired")
    assert result.state == "unknown"


def test_idempotent_enqueue_with_job_id(client: redis.Redis) -> None:
    first = sample_tasks.echo.apply_async(args=(1,), job_id="order-42")
    again = sample_tasks.echo.apply_async(args=(1,), job_id="order-42")
    assert first.id == again.id == "order-42"
    assert client.xlen(keys.stream("default")) == 1


def test_payload_over_the_limit_is_refused() -> None:
    from supervisor import configure
    from supervisor.errors import PayloadTooLarge

    configure(max_payload_bytes=200)
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        sample_tasks.echo.delay("x" * 500)


def test_ten_thousand_jobs_each_run_exactly_once(start_worker: Callable[..., Any],
                                                 client: redis.Redis) -> None:
    from supervisor import enqueue_many

    results = enqueue_many(sample_tasks.count_run.s() for _ in range(10_000))
    ids = {result.id for result in results}
    assert len(ids) == 10_000
    start_worker()
    wait_until(lambda: client.hlen("t:runs") == 10_000, timeout=120, interval=0.2,
               what="every job ran")
    runs = client.hgetall("t:runs")
    assert set(runs) == ids
    assert set(runs.values()) == {"1"}
    wait_until(lambda: client.xlen(keys.stream("default")) == 0, what="stream drained")
    assert AsyncResult(results[-1].id).get(timeout=5) == 1


def test_states_and_attempt_history(start_worker: Callable[..., Any]) -> None:
    later = sample_tasks.stamp.apply_async(countdown=30)
    queued = sample_tasks.slow.delay(1.0)
    assert later.state == "scheduled" and queued.state == "queued"
    start_worker()
    wait_until(lambda: queued.state == "started", what="slow job started")
    assert queued.info()["worker"].count("/") == 2
    retried = sample_tasks.asks_retry.delay()
    assert retried.get(timeout=15) == 3
    record = retried.info()
    assert record["state"] == "succeeded" and record["attempt"] == 3
    outcomes = [(entry["attempt"], entry["outcome"]) for entry in record["attempts"]]
    assert outcomes == [(1, "retry"), (2, "retry"), (3, "succeeded")]
    assert all(entry["finished"] >= entry["started"] for entry in record["attempts"])
    assert queued.get(timeout=15) == "done"


def test_ignore_result_keeps_no_record(start_worker: Callable[..., Any],
                                       client: redis.Redis) -> None:
    from supervisor.errors import JobNotFound

    result = sample_tasks.fire_and_forget.delay()
    start_worker()
    wait_until(lambda: client.hget("t:runs", result.id) == "1", what="job ran")
    wait_until(lambda: not client.exists(keys.job("default", result.id)), what="record gone")
    with pytest.raises(JobNotFound):
        result.get(timeout=1)
