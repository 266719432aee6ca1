"""Pure parts of the flow controls: rate parsing, option checks, limit names, unique keys."""

from __future__ import annotations

import heapq

import pytest

from supervisor.broker.streams import Delivery, unique_of
from supervisor.core.job import Job, decode
from supervisor.core.limits import (
    Limits,
    Rate,
    check_unique,
    limit_name,
    make_limits,
    parse_rate,
    unique_digest,
)
from supervisor.worker.limits import LimitScreen
from supervisor.worker.metrics import NullMetrics


@pytest.mark.parametrize(("text", "rate"), [
    ("50/s", Rate(50, 1000)), ("100/m", Rate(100, 60_000)), ("1000/h", Rate(1000, 3_600_000)),
    (" 5 / 10s ", Rate(5, 10_000)),
])
def test_rates_parse(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["50", "0/s", "-1/s", "5/d", "five/s", "5/0s", ""])
def test_bad_rates_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="COUNT/PERIOD|period must be positive"):
        parse_rate(text)


def test_the_burst_is_a_tenth_of_the_count_at_least_one() -> None:
    assert Rate(50, 1000).burst == 5
    assert Rate(5, 1000).burst == 1
    assert Rate(50, 1000).interval_ms == 20.0


def test_limit_options_are_checked() -> None:
    assert make_limits("t", None, None, None) is None
    with pytest.raises(ValueError, match="positive int"):
        make_limits("t", None, 0, None)
    with pytest.raises(ValueError, match="positive int"):
        make_limits("t", None, True, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs rate_limit= or concurrency_limit="):
        make_limits("t", None, None, lambda: "k")
    assert check_unique("t", False, None, None) is None
    assert check_unique("t", True, None, None) == 0
    assert check_unique("t", False, 1.5, None) == 2  # whole seconds, rounded up
    with pytest.raises(ValueError, match="positive seconds"):
        check_unique("t", True, 0, None)


def test_limit_names_are_per_task_or_per_key() -> None:
    plain = Limits(concurrency=2)
    keyed = Limits(concurrency=2, limit_key=lambda tenant, n: tenant)
    assert limit_name("t", plain, ("a", 1), {}) == "t"
    assert limit_name("t", keyed, ("a", 1), {}) == "t[a]"
    long_key = limit_name("t", keyed, ("x" * 300, 1), {})
    assert len(long_key) == 40  # hashed: it is part of a hash field
    assert "\n" not in limit_name("t", keyed, ("a\nb", 1), {})  # the waiting set splits on it
    with pytest.raises(ValueError, match="returned int"):
        limit_name("t", Limits(concurrency=1, limit_key=lambda n: n), (1,), {})


def test_equal_jobs_share_a_digest_and_others_do_not() -> None:
    one = unique_digest("t", (1, {"a": 1, "b": 2}), {"x": 1, "y": 2}, None)
    assert one == unique_digest("t", (1, {"b": 2, "a": 1}), {"y": 2, "x": 1}, None)
    assert one != unique_digest("t", (2, {"a": 1, "b": 2}), {"x": 1, "y": 2}, None)
    assert one != unique_digest("u", (1, {"a": 1, "b": 2}), {"x": 1, "y": 2}, None)
    by_key = unique_digest("t", ("acct", 1), {}, lambda account, n: account)
    assert by_key == unique_digest("t", ("acct", 2), {}, lambda account, n: account)


def test_the_worker_finds_the_unique_digest_in_a_message_without_decoding() -> None:
    job = Job(id="j1", task="t", queue="q", kwargs={"uq": "not-it"}, unique="abc123")
    text = job.encode()
    assert unique_of(text) == "abc123"
    assert decode(text).unique == "abc123"
    assert unique_of(Job(id="j2", task="t", queue="q").encode()) == ""


class NoBroker:
    """A broker that must not be asked: no registered task has a limit."""

    def admit_limited(self, *args: object) -> object:
        raise AssertionError("the gate ran for jobs without limits")


def test_without_limited_tasks_the_screen_passes_the_batch_untouched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("supervisor.worker.limits.has_limits", lambda: False)
    batch = [Delivery("q", "1-0", Job(id="a", task="t", queue="q").encode())]
    screen = LimitScreen("w", NullMetrics(), lambda: 0.0)
    assert screen.screen(NoBroker(), batch) is batch


def test_turns_handed_out_wake_the_worker_in_order() -> None:
    screen = LimitScreen("w", NullMetrics(), lambda: 0.0)
    screen.dues = [300, 100, 200]
    heapq.heapify(screen.dues)
    assert screen.next_due_ms == 100
    assert not screen.due_passed(99)
    assert screen.due_passed(250)
    assert screen.next_due_ms == 300
