"""A user's test module for their tasks, written the way the README tells users to.

It uses only the public testing mode (`supervisor.testing` and its pytest
fixtures): enqueue as the code does, drain(), assert. No worker process runs.
"""

from __future__ import annotations

import os

import pytest
import shop_tasks
from shop_tasks import add, broken, echo, flaky, place_order

from supervisor import TaskFailed
from supervisor.errors import InvalidMessage


@pytest.fixture(autouse=True)
def _forget_calls() -> None:
    shop_tasks.calls.clear()


def test_a_result_comes_back_through_redis(supervisor_drain) -> None:
    result = add.delay(2, 3)
    assert result.state == "queued"  # enqueued for real, not run on .delay()
    drained = supervisor_drain()
    assert result.get(timeout=1) == 5
    assert drained.succeeded == 1 and drained.job_ids == [result.id]


def test_arguments_and_results_make_the_json_round_trip(supervisor_drain) -> None:
    result = echo.delay({"items": (1, 2)})
    supervisor_drain()
    assert result.get(timeout=1) == {"items": [1, 2]}  # a tuple comes back a list, as in prod
    with pytest.raises(InvalidMessage, match="not JSON-serialisable"):
        echo.delay({1, 2})  # a set cannot travel: caught at .delay(), as in production


def test_retries_run_with_their_waits_skipped_in_this_process(supervisor_drain) -> None:
    result = flaky.delay(2)
    drained = supervisor_drain()
    assert result.get(timeout=1) == "ok after 3 attempts"
    assert (drained.retried, drained.succeeded) == (2, 1)
    assert [(name, attempt) for name, attempt, _ in shop_tasks.calls] == [
        ("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert {pid for _, _, pid in shop_tasks.calls} == {os.getpid()}  # no worker process
    assert [a["outcome"] for a in result.info()["attempts"]] == ["retry", "retry", "succeeded"]


def test_a_job_that_keeps_failing_is_dead_lettered(supervisor_testing) -> None:
    result = broken.delay(7)
    drained = supervisor_testing.drain()
    assert (drained.retried, drained.failed) == (1, 1)
    with pytest.raises(TaskFailed, match="order 7 has no lines"):
        result.get(timeout=1)
    [letter] = supervisor_testing.dead_letters("default")
    assert (letter["id"], letter["exc_type"], letter["attempts"]) == (result.id, "ValueError", 2)


def test_arguments_that_do_not_fit_are_dead_lettered_as_invalid(supervisor_testing) -> None:
    result = add.delay(1)  # y missing: a worker refuses it the same way
    supervisor_testing.drain()
    [letter] = supervisor_testing.dead_letters()
    assert letter["id"] == result.id and letter["reason"] == "invalid"


def test_jobs_enqueued_by_tasks_run_in_the_same_drain(supervisor_drain) -> None:
    order = place_order.delay(42, 990)
    drained = supervisor_drain()
    assert order.get(timeout=1) == 42
    assert drained.succeeded == 2
    assert [name for name, _, _ in shop_tasks.calls] == ["send_receipt"]


def test_without_skipping_waits_a_retry_stays_scheduled(supervisor_drain) -> None:
    result = flaky.delay(1)
    drained = supervisor_drain(skip_waits=False)
    assert drained.retried == 1 and drained.succeeded == 0
    assert result.state == "retrying"  # due in an hour
    supervisor_drain()
    assert result.get(timeout=1) == "ok after 2 attempts"


def test_drain_on_a_real_redis_the_test_gives(redis_url: str) -> None:
    """No fixture of the plugin: a redis-server of this suite's own, configured by hand."""
    from supervisor import configure
    from supervisor.api import session
    from supervisor.testing import drain

    saved = dict(session.overrides)
    configure(redis_url=redis_url)
    try:
        result = add.delay(20, 22)
        assert drain(["default"]).succeeded == 1
        assert result.get(timeout=1) == 42
        assert session.client().info("server")["redis_version"]  # a redis-server, not ours
    finally:
        session.overrides.clear()
        session.overrides.update(saved)
        configure()


def test_a_unique_job_is_one_job_until_it_settles(supervisor_drain) -> None:
    from shop_tasks import sync_stock
    first, again = sync_stock.delay("A-1"), sync_stock.delay("A-1")
    other = sync_stock.delay("B-2")
    assert again.id == first.id and other.id != first.id
    assert supervisor_drain().succeeded == 2
    assert first.get(timeout=1) == "synced A-1"
    after = sync_stock.delay("A-1")  # the lock went with the settle
    assert after.id != first.id
    supervisor_drain()
    assert after.get(timeout=1) == "synced A-1"


def test_rate_and_concurrency_limits_do_not_hold_drain_back(supervisor_drain) -> None:
    """drain() runs one job at a time and skips waits, so a limit has nothing to
    hold back: 5 jobs of a 2-per-hour task all run now."""
    from shop_tasks import call_carrier
    parcels = [call_carrier.delay(n) for n in range(5)]
    assert supervisor_drain().succeeded == 5
    assert [parcel.get(timeout=1) for parcel in parcels] == list(range(5))
