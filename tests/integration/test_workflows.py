"""Workflows (chain, group, chord) against real worker processes and a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
import workflow_tasks as wt
from helpers import wait_until

from supervisor import (
    EnqueueInfo,
    JobCancelled,
    Middleware,
    TaskFailed,
    chain,
    chord,
    configure,
    group,
)

pytestmark = pytest.mark.usefixtures("producer")
BOTH = f"default,{wt.OTHER}"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def test_chain_passes_each_result_to_the_next(start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    result = (wt.add.s(2, 2) | wt.add.s(4) | wt.add.s(8)).delay()
    assert result.get(timeout=20) == 16
    assert result.parent.get(timeout=5) == 8
    assert result.parent.parent.get(timeout=5) == 4
    assert result.parent.parent.children == [result.parent]
    assert chain(wt.add.s(1, 1), wt.constant.si(), wt.add.si(3, 3)).delay().get(timeout=20) == 6


def test_group_returns_its_results_in_order(start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="4")
    result = group(wt.add.s(i, i) for i in range(1000)).delay()
    assert result.get(timeout=60) == [2 * i for i in range(1000)]


@pytest.mark.timeout(300)  # two workers start, then up to 120 s for the callback
def test_chord_calls_back_once_with_every_result(start_worker: Callable[..., Any],
                                                 client: redis.Redis) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="4")
    result = chord((wt.add.s(i, 1) for i in range(10_000)), wt.counted_total.s("runs")).delay()
    assert result.get(timeout=120) == sum(range(1, 10_001))
    assert client.get("runs") == "1"


def test_steps_cross_queues(start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    result = (wt.add.s(1, 2) | wt.add_other.s(3) | wt.add.s(4)).delay()
    assert result.get(timeout=20) == 10
    # Members in one queue, callback in another; members in two queues.
    assert chord([wt.add.s(1, 1), wt.add.s(2, 2)], wt.total_other.s()).delay().get(
        timeout=20) == 6
    assert chord([wt.add.s(1, 1), wt.add_other.s(2, 2)], wt.total.s()).delay().get(
        timeout=20) == 6
    # Celery's other spelling: chord(header)(callback) sets the callback and enqueues.
    called = chord([wt.add.s(3, 3), wt.add.s(4, 4)])(wt.total_other.s())
    assert called.get(timeout=20) == 14
    assert [member.get(timeout=5) for member in called.parent.children] == [6, 8]


def test_failing_member_stops_its_chain_and_fails_its_chord(
        start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    stopped = (wt.add.s(1, 1) | wt.always_fails.s() | wt.add.s(1)).delay()
    with pytest.raises(TaskFailed, match="no good: 2"):
        stopped.get(timeout=20)
    failed = chord([wt.add.s(1, 1), wt.always_fails.s(7)], wt.total.s()).delay()
    with pytest.raises(TaskFailed, match="no good: 7"):
        failed.get(timeout=20)
    assert failed.info()["chord_failed"]["job_id"] == failed.parent.children[1].id
    anyway = chord([wt.add.s(1, 1), wt.always_fails.s(7)], wt.collect.s(),
                   on_failure="run").delay()
    values = anyway.get(timeout=20)
    assert values[0] == 2
    assert values[1]["__failed__"] is True and values[1]["exc_type"] == "ValueError"
    assert "no good: 7" in values[1]["message"]


def test_nesting(start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="2")
    # A chain inside a group.
    assert group(chain(wt.add.s(1, 1), wt.add.s(1)), wt.add.s(5, 5)).delay().get(
        timeout=20) == [3, 10]
    # A group inside a chain: with a step after it, a chord (made when the step before
    # it settles), and the chain goes on after the callback.
    assert (wt.add.s(1, 1) | group(wt.add.s(1), wt.add_other.s(2)) | wt.total.s()
            | wt.add.s(10)).delay().get(timeout=20) == 17
    # A group that ends a chain: the chain's result is the group's list.
    assert chain(wt.add.s(1, 1), group(wt.add.s(1), wt.add.s(2))).delay().get(
        timeout=20) == [3, 4]
    # A chord whose members are chains, and a chord as a chain's first step.
    assert chord([chain(wt.add.s(1, 1), wt.add_other.s(1)), wt.add.s(2, 2)],
                 wt.total.s()).delay().get(timeout=20) == 7
    assert (chord([wt.add.s(1, 1), wt.add.s(2, 2)], wt.total.s()) | wt.add.s(1)).delay().get(
        timeout=20) == 7


def shown_of(workflow_id: str, env: dict[str, str]) -> dict[str, Any]:
    """`supervisor job WORKFLOW_ID --json`."""
    return dict(json.loads(subprocess.run(
        [sys.executable, "-m", "supervisor", "job", workflow_id, "--json"],
        capture_output=True, text=True, env=env, check=True).stdout))


def test_a_chord_inside_a_groups_member_chain(start_worker: Callable[..., Any],
                                              redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="2")
    inner = chain(wt.add.s(1, 1), group(wt.add.s(1), wt.add_other.s(2)), wt.total.s())
    # In a group: the member's result is its inner chord's callback's.
    outer = group(inner, wt.add.s(10, 10)).delay()
    assert outer.get(timeout=20) == [7, 20]
    env = {"SUPERVISOR_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    wait_until(lambda: shown_of(outer.id, env)["state"] == "succeeded", timeout=10,
               what="the workflow ended")
    assert shown_of(outer.id, env)["workflow"]["counts"] == {"succeeded": 5}
    # Cancelled while its first member's first step runs: the inner chord is never made.
    waiting = group(chain(wt.wait_for.si("wf:nest"),
                          group(wt.headers_of.s(), wt.headers_of.s()), wt.collect.s()),
                    wt.add.s(1, 1)).delay()
    first = waiting.children[0].parent.children[0].parent
    wait_until(lambda: first.state == "started", timeout=10, what="the first step running")
    waiting.cancel_workflow()
    with pytest.raises(JobCancelled):
        waiting.get(timeout=20)
    wait_until(lambda: shown_of(waiting.id, env)["state"] == "failed", timeout=10,
               what="the cancelled workflow ended")
    # In a chord's header, also as the last member, and across queues.
    assert chord([wt.add.s(10, 10), inner], wt.total_other.s()).delay().get(
        timeout=20) == 27
    # Two levels deep: a chord in a member chain of a chord in a member chain.
    takes_one = chain(wt.add.s(1), group(wt.add.s(1), wt.add_other.s(2)), wt.total.s())
    deep = chain(wt.add.s(0, 1), group(takes_one, wt.add.s(2)), wt.total.s())
    assert group(deep, wt.add.s(1, 1)).delay().get(timeout=30) == [7 + 3, 2]
    with pytest.raises(ValueError, match="cannot end with a group"):
        group(chain(wt.add.s(1, 1), group(wt.add.s(1), wt.add.s(2))), wt.add.s(1, 1)).delay()


def test_a_step_failing_before_a_chord_stops_the_chain_and_its_error_is_raised(
        start_worker: Callable[..., Any]) -> None:
    # The chord after it is never made: get() on its callback raised nothing and waited
    # for its whole timeout, as if the chord were still to come.
    import asyncio

    start_worker(tasks="workflow_tasks", queues=BOTH)
    made = (wt.always_fails.s(1) | group(wt.add.s(1), wt.add.s(2)) | wt.total.s()).delay()
    with pytest.raises(TaskFailed, match="no good: 1"):
        made.get(timeout=20)
    with pytest.raises(TaskFailed, match="no good: 1"):
        asyncio.run(made.aget(timeout=20))


def test_a_failure_inside_a_chain_of_a_chord_fails_the_chord(
        start_worker: Callable[..., Any]) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    failed = chord([chain(wt.add.s(1, 1), wt.always_fails.s(), wt.add.s(1)), wt.add.s(2, 2)],
                   wt.total.s()).delay()
    with pytest.raises(TaskFailed, match="ChordFailed"):
        failed.get(timeout=20)


class Tenant(Middleware):
    """A producer hook: every job carries its tenant."""

    def before_enqueue(self, job: EnqueueInfo) -> None:
        job.headers["tenant"] = "acme"


def test_headers_travel_into_the_next_step_and_the_callback(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    configure(redis_url=redis_url, middleware=[Tenant()])
    try:
        second = (wt.add.s(1, 1) | wt.my_headers.s()).apply_async(headers={"req": "r1"})
        assert second.get(timeout=20) == {"tenant": "acme", "req": "r1"}
        callback = chord([wt.add.s(1, 1), wt.add_other.s(1, 1)], wt.my_headers.s()).delay()
        assert callback.get(timeout=20) == {"tenant": "acme"}
    finally:
        configure(middleware=[])


def test_cancelling_a_workflow_cancels_every_member_not_finished(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    flow = chain(wt.wait_for.si("wf:go"), wt.add.si(1, 1), wt.add.s(1)).delay()
    chorded = chord([wt.wait_for.si("wf:go"), wt.add.s(1, 1)], wt.total.s()).delay()
    first = flow.parent.parent
    wait_until(lambda: first.state == "started", timeout=10)
    replies = flow.cancel_workflow()
    assert replies[first.id] == "running"
    with pytest.raises(JobCancelled):
        flow.get(timeout=20)
    assert flow.parent.state == "unknown" and flow.state == "unknown"  # never made
    chorded.cancel_workflow()
    with pytest.raises(TaskFailed, match="cancelled"):
        chorded.get(timeout=20)
    client.set("wf:go", "1")


def test_no_key_of_a_workflow_is_left_after_its_records_expire(
        start_worker: Callable[..., Any], client: redis.Redis, redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_RESULT_TTL="2")
    configure(redis_url=redis_url, result_ttl=2)
    done = [(wt.add.s(1, 2) | wt.add_other.s(3)).delay(),
            chord([wt.add.s(i, i) for i in range(50)], wt.total_other.s()).delay(),
            chord([wt.add.s(1, 1), wt.always_fails.s(1)], wt.total.s()).delay()]
    assert done[0].get(timeout=20) == 6 and done[1].get(timeout=20) == 2450
    with pytest.raises(TaskFailed):
        done[2].get(timeout=20)

    def workflow_keys() -> list[str]:
        return [name for name in client.scan_iter(count=1000)
                if any(part in name for part in (":job:", ":chord:", ":forward", ":staged:",
                                                 ":workflow:", ":workflows:", ":chords"))]

    assert workflow_keys()  # there were some
    try:
        wait_until(lambda: not workflow_keys(), timeout=15, what="workflow keys expired")
    except AssertionError:
        left = {name: client.ttl(name) for name in workflow_keys()}
        raise AssertionError(f"keys left (name: ttl): {left}") from None


def test_supervisor_job_shows_the_workflow_tree(start_worker: Callable[..., Any],
                                                redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    flow = (wt.add.s(1, 1) | group(wt.add.s(1), wt.always_fails.s()) | wt.total.s())
    callback = flow.delay()
    with pytest.raises(TaskFailed):
        callback.get(timeout=20)
    first = callback.parent.children[0].parent
    env = {"SUPERVISOR_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([sys.executable, "-m", "supervisor", "job", first.id, "--json"],
                           capture_output=True, text=True, env=env, check=True)
    tree = json.loads(shown.stdout)["workflow"]
    assert tree["members"] == 4
    assert tree["counts"] == {"succeeded": 2, "failed": 2}
    chain_steps = tree["steps"]
    assert [step.get("state") for step in chain_steps] == ["succeeded", None, "failed"]
    assert [m[0]["state"] for m in chain_steps[1]["members"]] == ["succeeded", "failed"]
    text = subprocess.run([sys.executable, "-m", "supervisor", "job", callback.id],
                          capture_output=True, text=True, env=env, check=True).stdout
    assert f"workflow_tasks.total {callback.id} [default] failed  <- this job" in text
    assert "group " in text and "workflow_tasks.always_fails" in text


def test_open_chords_are_counted_per_queue(start_worker: Callable[..., Any],
                                           client: redis.Redis, redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    callback = chord([wt.wait_for.si("wf:open"), wt.add.s(1, 1)], wt.collect.s()).delay()
    env = {"SUPERVISOR_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}

    def chords_open() -> dict[str, int]:
        shown = subprocess.run([sys.executable, "-m", "supervisor", "queues", "--json"],
                               capture_output=True, text=True, env=env, check=True)
        return {row["queue"]: row["chords"] for row in json.loads(shown.stdout)}

    assert chords_open()["default"] == 1
    text = subprocess.run([sys.executable, "-m", "supervisor", "queues"], capture_output=True,
                          text=True, env=env, check=True).stdout
    assert "1 chords open" in text
    status = subprocess.run([sys.executable, "-m", "supervisor", "status", "--json"],
                            capture_output=True, text=True, env=env, check=True).stdout
    assert {row["queue"]: row["chords"] for row in json.loads(status)["queues"]}["default"] == 1
    client.set("wf:open", "1")
    assert callback.get(timeout=20) == ["wf:open", 2]
    assert chords_open()["default"] == 0


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_retried_and_async_members(start_worker: Callable[..., Any], client: redis.Redis,
                                   concurrency: str) -> None:
    """A member that fails once is retried (durably delayed) and its chord waits for it;
    async def members; two workers on overlapping queue sets."""
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY=concurrency)
    start_worker(tasks="workflow_tasks", queues="default")
    header = [wt.flaky_add.s(i, 1, "flaky") for i in range(20)] + [
        wt.async_add.s(i, 1) for i in range(20)]
    result = chord(header, wt.total_other.s()).delay()
    assert result.get(timeout=60) == 2 * sum(range(1, 21))
    assert all(client.get(f"flaky:{i}") == "2" for i in range(20))  # each retried once
    chained = (wt.flaky_add.s(100, 1, "chain") | wt.async_add.s(1) | wt.add_other.s(1))
    assert chained.delay().get(timeout=30) == 103
