"""Workflow jobs keep their priority: where each one is added (the broker driven
directly, on a real Redis) and the order they start in (real workers).

A step takes its signature's priority (`.set(priority=)`), else its task's. Its job
goes to its level's stream (sv:{q}:stream:pN), the level listed in sv:{q}:levels in
the same script, wherever a workflow job is added: the first jobs' commit, a chain's
next step in the settle (local, or forwarded to another queue's slot), a chord's
callback added by the member that ends the chord. Tasks: priority_tasks.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import priority_tasks as pt
import pytest
import redis
from helpers import wait_until

from supervisor import chord, enqueue_many, group
from supervisor.api.canvas import steps_of
from supervisor.api.flows import send
from supervisor.broker import keys
from supervisor.broker.streams import Broker, Settlement
from supervisor.core import canvas, record
from supervisor.core.job import Job, decode
from supervisor.core.outcome import Outcome

pytestmark = pytest.mark.usefixtures("producer")

CONSUMER = "node:1:1"
PREFETCH = 10  # small, so "within one fetch round" is a tight bound


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def launch(broker: Broker, node: Any, root: str = "wf-p") -> list[dict[str, Any]]:
    """Send `node`'s first jobs as a producer does (api/flows.py send)."""
    steps = steps_of(node, 600)
    for step in steps:
        if "g" in step and not step["home"]:
            step["home"] = step["g"][0][-1]["q"]
    send(broker, canvas.start(steps, canvas.NO_VALUE, canvas.Context(root, {}, "here"), None),
         root)
    return steps


def succeed(broker: Broker, deliveries: list[Any]) -> int:
    """Settle `deliveries` as succeeded (result: the label); how many were settled."""
    items = []
    for delivery in deliveries:
        job = decode(delivery.message)
        written = record.succeeded(job, "done", record.Attempt(CONSUMER, 1.0, 2.0))
        items.append(Settlement(delivery, job.id, Outcome(written, 600)))
    return broker.settle(CONSUMER, items, int(time.time() * 1000))


def level_ids(client: redis.Redis, queue: str, level: int) -> list[str]:
    """The job ids waiting in one level stream of `queue`, in order."""
    return [decode(fields["m"]).id
            for _, fields in client.xrange(keys.level_stream(queue, level))]


def test_group_members_set_to_priority_9_are_committed_to_level_9_and_fetched_first(
        client: redis.Redis) -> None:
    broker = Broker(client)
    broker.ensure_groups(["pq"])
    enqueue_many(pt.MARKS["pq"].s("low") for _ in range(50))  # a backlog, level 0
    node = group(*(pt.MARKS["pq"].s(f"g{i}").set(priority=9) for i in range(3)),
                 pt.MARKS["pq"].s("plain"))
    steps = launch(broker, node)
    urgent_ids = [member[0]["id"] for member in steps[0]["g"][:3]]
    assert level_ids(client, "pq", 9) == urgent_ids
    assert client.smembers(keys.levels("pq")) == {"9"}  # listed in the commit's step
    assert client.xlen(keys.stream("pq")) == 51  # the plain member stays on level 0
    assert [decode(m).priority for _, f in client.xrange(keys.level_stream("pq", 9))
            for m in [f["m"]]] == [9, 9, 9]  # the message carries it: retries keep it
    assert not client.exists(keys.staged("pq", "wf-p", 9), keys.staged("pq", "wf-p"))
    # Before the backlog. (This broker meets level 9 for the first time: that once, its
    # fetch reads the new level first, then its batch of level 0; README "Priorities".)
    fetched = broker.fetch(CONSUMER, ["pq"], 3, None)
    assert [decode(d.message).id for d in fetched][:3] == urgent_ids


def test_the_sync_and_the_async_sender_both_commit_to_the_level(client: redis.Redis) -> None:
    """One builder (api/canvas.py prepare), two senders (api/flows.py send / asend)."""
    def node() -> Any:
        return group(pt.urgent.s("a"), pt.MARKS["pq"].s("b").set(priority=4),
                     pt.MARKS["pq"].s("c"))

    synced = node().delay()
    awaited = asyncio.run(node().adelay())
    for handle in (synced, awaited):
        urgent, middle, plain = (child.id for child in handle.children)
        assert urgent in level_ids(client, "pq", 9) and middle in level_ids(client, "pq", 4)
        assert plain in level_ids(client, "pq", 0)
    assert client.smembers(keys.levels("pq")) == {"9", "4"}
    assert [client.xlen(keys.level_stream("pq", n)) for n in (9, 4, 0)] == [2, 2, 2]


@pytest.mark.parametrize("callback_queue", ["pq", "other"])
def test_a_chord_callback_of_priority_9_is_added_to_level_9_by_its_last_member(
        client: redis.Redis, callback_queue: str) -> None:
    broker = Broker(client)
    broker.ensure_groups(["pq", "other"])
    body = pt.urgent_total.s("cb") if callback_queue == "pq" else pt.urgent_other.s()
    steps = launch(broker, chord([pt.MARKS["pq"].s("m0"), pt.MARKS["pq"].s("m1")], body))
    callback_id = steps[1]["id"]
    members = broker.fetch(CONSUMER, ["pq"], 10, None)
    assert len(members) == 2
    assert succeed(broker, members) == 2  # the second one ends the chord
    if callback_queue == "other":  # the chord lives in pq: the callback is a forward
        assert level_ids(client, "other", 9) == []
        assert broker.forward(["pq"]) == 1
    assert level_ids(client, callback_queue, 9) == [callback_id]
    assert client.smembers(keys.levels(callback_queue)) == {"9"}
    assert client.xlen(keys.stream(callback_queue)) == 0


@pytest.mark.parametrize("first_queue", ["pq", "other"])
def test_a_chains_next_step_of_priority_9_is_added_to_level_9(
        client: redis.Redis, first_queue: str) -> None:
    """In the settle of the step before it (same queue), or through that queue's forward
    list into pq's slot (another queue)."""
    broker = Broker(client)
    broker.ensure_groups(["pq", "other"])
    steps = launch(broker, pt.MARKS[first_queue].s("c1") | pt.urgent.si("c2"))
    assert client.smembers(keys.levels("pq")) == set()  # nothing of level 9 yet
    assert succeed(broker, broker.fetch(CONSUMER, [first_queue], 10, None)) == 1
    if first_queue == "other":
        assert level_ids(client, "pq", 9) == []
        assert broker.forward(["other"]) == 1
    assert level_ids(client, "pq", 9) == [steps[1]["id"]]
    assert client.smembers(keys.levels("pq")) == {"9"}
    assert client.xlen(keys.stream("pq")) == 0


def retry(job: Job, due_ms: int) -> Outcome:
    following = job.next_attempt({"attempt": job.attempt, "outcome": "retry"})
    failure = record.Failure("ValueError", "again", "", "")
    return Outcome(record.retrying(following, failure, due_ms / 1000), 600,
                   retry_message=following.encode(), retry_due_ms=due_ms)


def test_a_retry_of_a_priority_9_workflow_step_stays_on_level_9(client: redis.Redis) -> None:
    broker = Broker(client)
    broker.ensure_groups(["pq"])
    steps = launch(broker, pt.MARKS["pq"].s("c1") | pt.urgent.si("c2"))
    assert succeed(broker, broker.fetch(CONSUMER, ["pq"], 10, None)) == 1
    enqueue_many(pt.MARKS["pq"].s("low") for _ in range(20))  # level 0, behind it
    now = int(time.time() * 1000)
    for attempt, due in ((2, now), (3, now + 60_000)):  # due at once; then delayed
        # First (the first fetch after level 9 appeared adds a batch of level 0 behind).
        delivery = broker.fetch(CONSUMER, ["pq"], 1, None)[0]
        job = decode(delivery.message)
        assert (job.id, job.priority, job.attempt) == (steps[1]["id"], 9, attempt - 1)
        settled = Settlement(delivery, job.id, retry(job, due))
        assert broker.settle(CONSUMER, [settled], now) == 1
        if due > now:
            assert broker.promote(["pq"], due + 1) == 1
        assert level_ids(client, "pq", 9) == [steps[1]["id"]]
    job = decode(broker.fetch(CONSUMER, ["pq"], 1, None)[0].message)
    assert (job.id, job.attempt) == (steps[1]["id"], 3)


def test_a_forward_and_a_chord_written_before_levels_still_apply_on_level_0(
        client: redis.Redis) -> None:
    """An older producer's or worker's operations name no levels: an 'enq' of two keys, a
    chord whose callback names its record and stream only. Both add to level 0."""
    broker = Broker(client)
    jobs = [Job(id=f"old-{n}", task=pt.urgent_other.name, queue="other") for n in range(2)]
    enq = ["enq", 1, 2, jobs[0].encode(), record.of_new_job(jobs[0], 0), 600]
    client.rpush(keys.forward("pq"), json.dumps(
        {"k": [keys.job("other", "old-0"), keys.stream("other")], "o": [enq]}))
    assert broker.forward(["pq"]) == 1
    callback_names = json.dumps([keys.job("other", "old-1"), keys.stream("other")])
    opened = ["chord", 1, 1, "fail", jobs[1].encode(), record.of_new_job(jobs[1], 0), 600,
              callback_names, 2]
    member = ["m", 1, 0, 'v"x"', 0, 0, 3, "", 2, "ch", 0]  # the last member, chord in pq
    broker.apply_workflow([([keys.chord("pq", "ch"), keys.chords("pq"), keys.forward("pq")],
                            json.dumps([opened, member]))])
    assert broker.forward(["pq"]) == 1
    assert level_ids(client, "other", 0) == ["old-0", "old-1"]
    assert not client.exists(keys.levels("other"))


# --- real workers: the order in which jobs start ---------------------------------------


def order(client: redis.Redis) -> list[str]:
    return list(client.lrange("t:order", 0, -1))


def backlog(count: int) -> None:
    for start in range(0, count, 5000):
        enqueue_many(pt.MARKS["pq"].s("low") for _ in range(start, min(count, start + 5000)))


def test_a_priority_9_step_of_a_chain_starts_within_a_fetch_round_of_its_enqueue(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    """The chain's first step is `.set(priority=9)` (the first jobs' commit), its second a
    priority-9 task (added by the first one's settle), behind 10,000 priority-0 jobs."""
    backlog(10_000)
    start_worker(queues="pq", tasks="priority_tasks", SUPERVISOR_PREFETCH=str(PREFETCH))
    wait_until(lambda: client.llen("t:order") >= 200, timeout=60, what="the backlog runs")
    before = client.llen("t:order")
    handle = (pt.MARKS["pq"].s("c1").set(priority=9) | pt.urgent.si("c2")).delay()
    assert handle.get(timeout=60) == "c2"
    started = order(client)
    first, second = started.index("pq:c1"), started.index("pq:c2")
    # Each started after at most what the worker held when it was enqueued (its batch,
    # one fetch in flight) and the job running then; never behind the backlog.
    assert first - before <= 2 * PREFETCH + 1, (first, before)
    assert second - first <= 2 * PREFETCH + 1, (first, second)
    assert client.xlen(keys.stream("pq")) > 5_000  # the backlog was still there


def test_a_priority_9_step_forwarded_from_another_queue_starts_before_the_backlog(
        start_worker: Callable[..., Any], client: redis.Redis) -> None:
    """A cross-queue chain: the step reaches pq through other's forward list (moved on
    every quarter second, so bounded by the backlog, not by a fetch round)."""
    backlog(20_000)
    start_worker(queues="other,pq", tasks="priority_tasks", SUPERVISOR_PREFETCH=str(PREFETCH))
    wait_until(lambda: client.llen("t:order") >= 200, timeout=60, what="the backlog runs")
    handle = (pt.MARKS["other"].s("x1") | pt.urgent.si("x2")).delay()
    assert handle.get(timeout=60) == "x2"
    assert client.xlen(keys.stream("pq")) > 1_000  # started before the backlog drained
