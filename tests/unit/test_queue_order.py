"""Queue order decisions (core/queue_order.py) on a fake state, and their configuration."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from supervisor.config import load_config, replace
from supervisor.core.queue_order import QueueOrder, refill
from supervisor.errors import ConfigError


def fetch(order: QueueOrder, backlog: dict[str, int], count: int) -> dict[str, int]:
    """What fetch.lua takes from a fake state: quotas first, the rest in plan order."""
    plan = order.plan(count)
    got = {name: min(quota, backlog[name]) for name, quota in plan}
    for name in refill(plan, got, count):
        got[name] += min(count - sum(got.values()), backlog[name] - got[name])
    for name, taken in got.items():
        backlog[name] -= taken
    order.took(plan, got)
    return got


def test_strict_order_takes_the_first_queue_while_it_has_jobs() -> None:
    order = QueueOrder(["a", "b", "c"])
    backlog = {"a": 25, "b": 12, "c": 100}
    rounds = [fetch(order, backlog, 10) for _ in range(5)]
    assert rounds == [{"a": 10, "b": 0, "c": 0}, {"a": 10, "b": 0, "c": 0},
                      {"a": 5, "b": 5, "c": 0}, {"a": 0, "b": 7, "c": 3},
                      {"a": 0, "b": 0, "c": 10}]


@pytest.mark.parametrize("count", [1, 3, 7, 10, 64])
def test_weighted_mix_follows_the_weights_while_every_queue_has_work(count: int) -> None:
    order = QueueOrder(["a", "b", "c"], [6, 3, 1])
    backlog = {"a": 10**6, "b": 10**6, "c": 10**6}
    total: Counter[str] = Counter()
    rounds = 1000
    for _ in range(rounds):
        total.update(fetch(order, backlog, count))
    jobs = rounds * count
    for name, share in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        assert abs(total[name] - jobs * share) <= 2  # exact up to the last round's rounding


def test_a_queue_whose_share_is_a_job_gets_one_every_round() -> None:
    order = QueueOrder(["a", "b", "c"], [6, 3, 1])
    backlog = {"a": 10**6, "b": 10**6, "c": 10**6}
    for _ in range(200):
        assert all(taken >= 1 for taken in fetch(order, backlog, 10).values())


def test_a_small_share_is_served_every_ceil_one_over_share_rounds() -> None:
    order = QueueOrder(["a", "b"], [99, 1])
    backlog = {"a": 10**6, "b": 10**6}
    served = [i for i in range(300) if fetch(order, backlog, 10)["b"]]
    gaps = {later - earlier for earlier, later in zip(served, served[1:], strict=False)}
    assert served and max(gaps) <= math.ceil(1 / (10 * 1 / 100))


def test_an_empty_queue_gives_its_quota_away_and_banks_no_credit() -> None:
    order = QueueOrder(["a", "b"], [1, 1])
    backlog = {"a": 0, "b": 10**6}
    for _ in range(50):
        assert fetch(order, backlog, 10) == {"a": 0, "b": 10}  # no fetch takes less
    backlog["a"] = 10**6
    # Back with work: its share, not a burst paid by 50 rounds of absence.
    assert [fetch(order, backlog, 10) for _ in range(3)] == [{"a": 5, "b": 5}] * 3


def test_paused_queues_are_left_out_of_the_plan() -> None:
    order = QueueOrder(["a", "b", "c"], [6, 3, 1])
    plan = order.plan(8, ["a", "c"])
    assert [name for name, _ in plan] == ["a", "c"]
    assert sum(quota for _, quota in plan) == 8


def test_queues_option_strict_and_weighted(tmp_path: Path) -> None:
    strict = load_config({"queues": "a,b,c"}, env={})
    assert (strict.queues, strict.queue_weights) == (("a", "b", "c"), ())
    weighted = load_config({}, env={"SUPERVISOR_QUEUES": "a:6, b:3 ,c:1"})
    assert (weighted.queues, weighted.queue_weights) == (("a", "b", "c"), (6, 3, 1))
    file = tmp_path / "s.toml"
    file.write_text('queues = ["hi:3", "lo:1"]\n')
    from_file = load_config({"config_file": str(file)}, env={})
    assert (from_file.queues, from_file.queue_weights) == (("hi", "lo"), (3, 1))
    assert replace(weighted, queues="x").queue_weights == ()


@pytest.mark.parametrize(("value", "says"), [
    ("a:0", "weight of queue 'a' must be a whole number of at least 1, got '0'"),
    ("a:x", "got 'x'"),
    ("a:-2", "got '-2'"),
    ("a:6,b", "give every queue a weight"),
    ("a,a", "listed twice"),
    (":3", "has no name"),
])
def test_bad_queues_are_refused_with_what_to_write(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--queues") as refused:
        load_config({"queues": value}, env={})
    assert says in str(refused.value)
