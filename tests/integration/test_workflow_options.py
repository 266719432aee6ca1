"""Workflow options against real worker processes and a real Redis: a step's own queue
and countdown, a workflow's countdown or eta, and a task's expires on its workflow jobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
import workflow_tasks as wt
from helpers import wait_until

from supervisor import JobCancelled, chain, chord, group

pytestmark = pytest.mark.usefixtures("producer")
BOTH = f"default,{wt.OTHER}"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def test_a_steps_own_queue_sends_it_there(start_worker: Callable[..., Any],
                                         client: redis.Redis) -> None:
    # `.set(queue=...)`: a step, a member and a callback in another queue than their task's.
    start_worker(tasks="workflow_tasks", queues=BOTH)
    result = (wt.add.s(1, 2) | wt.add.s(3).set(queue=wt.OTHER) | wt.add.s(4)).delay()
    assert result.get(timeout=20) == 10
    assert result.parent.queue == wt.OTHER
    assert json.loads(client.get(f"sv:{{{wt.OTHER}}}:job:{result.parent.id}"))["queue"] == \
        wt.OTHER
    made = chord([wt.add.s(1, 1), wt.add.s(2, 2).set(queue=wt.OTHER)],
                 wt.total.s().set(queue=wt.OTHER)).delay()
    assert made.get(timeout=20) == 6
    assert made.queue == wt.OTHER
    assert [member.queue for member in made.parent.children] == ["default", wt.OTHER]


def test_a_countdown_or_eta_schedules_the_first_jobs(start_worker: Callable[..., Any],
                                                    client: redis.Redis) -> None:
    import asyncio
    import time
    from datetime import UTC, datetime, timedelta

    from supervisor.broker import keys

    # No worker yet: the first jobs wait in the delayed sets, their records scheduled.
    before = time.time()
    made = chord([wt.add.s(1, 1), wt.add_other.s(2, 2)], wt.total.s()).apply_async(
        countdown=30)
    members = made.parent.children
    for member in members:
        assert member.state == "scheduled"
        assert json.loads(client.get(keys.job(member.queue, member.id)))["due"] >= before + 29
    assert client.zcard(keys.delayed("default")) == 1 == client.zcard(keys.delayed(wt.OTHER))
    assert not client.exists(keys.stream("default")) and not client.exists(
        keys.stream(wt.OTHER))
    chained = (wt.add.s(2, 3) | wt.add.s(4)).apply_async(
        eta=datetime.now(UTC) + timedelta(seconds=1))
    assert chained.parent.state == "scheduled"

    async def from_asyncio() -> Any:
        return await group(wt.add.s(i, i) for i in range(3)).aapply_async(countdown=1)
    grouped = asyncio.run(from_asyncio())
    assert [child.state for child in grouped.children] == ["scheduled"] * 3
    start_worker(tasks="workflow_tasks", queues=BOTH)
    assert chained.get(timeout=20) == 9
    assert grouped.get(timeout=20) == [0, 2, 4]
    started = json.loads(client.get(keys.job("default", chained.parent.id)))["attempts"][0]
    assert started["started"] >= before + 1  # not before its eta
    # The chord's members have 30 s to go: still scheduled, while the others ran.
    assert [member.state for member in members] == ["scheduled", "scheduled"]
    assert client.zcard(keys.delayed("default")) == 1 == client.zcard(keys.delayed(wt.OTHER))
    with pytest.raises(ValueError, match="either countdown= or eta="):
        chain(wt.add.s(1, 1)).apply_async(countdown=1, eta=datetime.now(UTC))


def test_a_tasks_expires_applies_to_its_workflow_jobs(start_worker: Callable[..., Any],
                                                    client: redis.Redis) -> None:
    import time

    from supervisor.broker import keys
    from supervisor.core.job import decode

    # The first step of a brief task, no worker for longer than its expires: not run.
    late = (wt.brief_add.s(1, 1) | wt.add.s(5)).delay()
    [(_, fields)] = client.xrange(keys.stream("default"))
    made = decode(fields["m"])
    assert made.id == late.parent.id and 0 < made.expires - time.time() <= 0.5
    wait_until(lambda: time.time() > made.expires, timeout=5, what="past its expiry")
    # Scheduled for 1 s from now: its half second counts from then, so it runs.
    scheduled = (wt.brief_add.s(2, 2) | wt.add.s(5)).apply_async(countdown=1)
    start_worker(tasks="workflow_tasks", queues=BOTH)
    with pytest.raises(JobCancelled):
        late.get(timeout=20)  # the chain stopped at its expired first step
    info = late.parent.info()
    assert (info["state"], info["cancelled"]["reason"]) == ("cancelled", "expired")
    assert scheduled.get(timeout=20) == 9
    # A next step of a brief task made when its parent settles: started at once, it runs.
    assert (wt.add.s(1, 1) | wt.brief_add.s(3)).delay().get(timeout=20) == 5


def test_a_steps_own_countdown_counts_from_when_its_job_is_made(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    import time

    from supervisor.broker import keys

    # A first job with a countdown of its own, beside one without; no worker yet.
    before = time.time()
    made = group(wt.add.s(1, 1).set(countdown=1.5), wt.add_other.s(2, 2)).delay()
    later, now = made.children
    assert later.state == "scheduled" and now.state == "queued"
    assert client.zcard(keys.delayed("default")) == 1
    assert client.xlen(keys.stream(wt.OTHER)) == 1
    # A next step with a countdown (in its queue, and across queues): made when the step
    # before it settles, due then + its countdown.
    chained = (wt.add.s(1, 2) | wt.add.s(3).set(countdown=1) | wt.add_other.s(4).set(
        countdown=1)).delay()
    with pytest.raises(ValueError, match="chord's callback cannot have a countdown"):
        chord([wt.add.s(1, 1)], wt.total.s().set(countdown=5)).delay()
    start_worker(tasks="workflow_tasks", queues=BOTH)
    assert made.get(timeout=20) == [2, 4]
    assert json.loads(client.get(keys.job("default", later.id)))["attempts"][0][
        "started"] >= before + 1.5
    assert chained.get(timeout=20) == 10

    def started(step: Any) -> float:
        return float(json.loads(client.get(keys.job(step.queue, step.id)))["attempts"][0][
            "started"])

    def finished(step: Any) -> float:
        return float(json.loads(client.get(keys.job(step.queue, step.id)))["finished_at"])
    second, first = chained.parent, chained.parent.parent
    assert started(second) >= finished(first) + 1
    assert started(chained) >= finished(second) + 1
    # enqueue_many takes it too.
    from supervisor import enqueue_many

    [waiting] = enqueue_many([wt.add.s(5, 5).set(countdown=30)])
    assert waiting.state == "scheduled"
