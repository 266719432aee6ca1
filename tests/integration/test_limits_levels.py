"""Concurrency slots and priority levels on a real Redis, step by step (the broker's calls a
worker makes): a job woken from waiting for a slot goes back to the stream of its own
level, whatever the level of the job that freed the slot, and among the waiters of one
limit the highest priority is woken first (then the oldest)."""

from __future__ import annotations

import time

from supervisor.broker import keys
from supervisor.broker.limits import Gated
from supervisor.broker.streams import Broker, Delivery, EnqueueRequest, Settlement
from supervisor.core import outcome, record
from supervisor.core.job import Job, decode

LIMIT = "t"  # the limit's name: one slot (MOST) for every job of these tests
MOST = 1


def now_ms() -> int:
    return int(time.time() * 1000)


def request(job_id: str, priority: int = 0) -> EnqueueRequest:
    job = Job(id=job_id, task="t", queue="q", priority=priority)
    return EnqueueRequest("q", job_id, job.encode(), record.of_new_job(job, 0), 0)


def ids(deliveries: list[Delivery]) -> list[str]:
    return [decode(d.message).id for d in deliveries]


def gate(broker: Broker, consumer: str, deliveries: list[Delivery]) -> list[str]:
    """Send `deliveries` through the concurrency gate; the ids of those sent to wait."""
    gated = [Gated(d.entry_id, decode(d.message).id, LIMIT, MOST, "", 0, 0, 1, d.message, "")
             for d in deliveries]
    waited = broker.admit_limited(consumer, {"q": gated}, now_ms()).get("q", [])
    by_entry = {d.entry_id: decode(d.message).id for d in deliveries}
    return [by_entry[w.entry_id] for w in waited]


def take(broker: Broker, consumer: str, job_id: str, priority: int) -> Delivery:
    """Enqueue one job, fetch it and pass it through the gate: it holds the slot."""
    broker.enqueue(request(job_id, priority), now_ms())
    (delivery,) = broker.fetch(consumer, ["q"], 1, None)
    assert gate(broker, consumer, [delivery]) == []
    return delivery


def wait_for_slot(broker: Broker, job_id: str, priority: int) -> None:
    """Enqueue one job, fetch it and pass it through the gate: the slot is taken, it waits."""
    broker.enqueue(request(job_id, priority), now_ms())
    (delivery,) = broker.fetch("waiter", ["q"], 1, None)
    assert gate(broker, "waiter", [delivery]) == [job_id]


def settle(broker: Broker, consumer: str, delivery: Delivery) -> None:
    done = outcome.Outcome(record="{}", ttl=60)
    assert broker.settle(consumer, [Settlement(delivery, decode(delivery.message).id, done)],
                         now_ms()) == 1


def test_a_priority_9_waiter_woken_by_a_priority_0_settle_runs_before_the_backlog(
        broker: Broker) -> None:
    holder = take(broker, "c1", "holder", 0)
    wait_for_slot(broker, "urgent", 9)
    broker.enqueue_many([request(f"low{n}") for n in range(50)], now_ms())
    settle(broker, "c1", holder)
    # Woken onto level 9 (listed in the levels set), not behind the 50 of level 0.
    assert broker.client.xlen(keys.level_stream("q", 9)) == 1
    assert broker.client.xlen(keys.stream("q")) == 50
    assert ids(broker.fetch("c2", ["q"], 3, None)) == ["urgent", "low0", "low1"]


def test_a_priority_0_waiter_woken_by_a_priority_9_settle_stays_on_level_0(
        broker: Broker) -> None:
    holder = take(broker, "c1", "holder", 9)
    wait_for_slot(broker, "late", 0)
    broker.enqueue_many([request(f"low{n}") for n in range(3)], now_ms())
    settle(broker, "c1", holder)
    # Woken at the tail of level 0, behind the jobs of its level enqueued meanwhile: it
    # does not jump the queue onto level 9.
    assert broker.client.xlen(keys.level_stream("q", 9)) == 0
    assert ids(broker.fetch("c2", ["q"], 10, None)) == ["low0", "low1", "low2", "late"]


def test_a_newer_priority_9_waiter_is_woken_before_an_older_priority_0_one(
        broker: Broker) -> None:
    holder = take(broker, "c1", "holder", 0)
    wait_for_slot(broker, "old-low", 0)
    wait_for_slot(broker, "mid", 4)
    wait_for_slot(broker, "new-top", 9)
    wait_for_slot(broker, "older-top-second", 9)
    woken = []
    for _ in range(4):
        settle(broker, "c1", holder)
        (holder,) = broker.fetch("c1", ["q"], 5, None)  # the one woken, alone on the streams
        woken.append(decode(holder.message).id)
        assert gate(broker, "c1", [holder]) == []  # it takes the slot just freed
    # Highest level first, and within a level the oldest.
    assert woken == ["new-top", "older-top-second", "mid", "old-low"]
    settle(broker, "c1", holder)
    assert not broker.client.exists(*keys.limit_keys("q")[:3])  # no slot held, none waiting


def test_a_hand_back_wakes_the_waiter_onto_its_own_level(broker: Broker) -> None:
    holder = take(broker, "c1", "holder", 0)
    wait_for_slot(broker, "urgent", 7)
    broker.enqueue_many([request(f"low{n}") for n in range(5)], now_ms())
    assert broker.hand_back("c1", [(holder, holder.message, "holder")]) == 1
    assert broker.client.smembers(keys.levels("q")) == {"7"}
    assert ids(broker.fetch("c2", ["q"], 2, None)) == ["urgent", "low0"]


def test_a_waiter_queued_in_the_old_member_format_is_still_woken(broker: Broker) -> None:
    # A waiter a worker of the previous release left ("<limit>\n<ms>\n<message>", no level):
    # woken as before, onto the level its message carries.
    holder = take(broker, "c1", "holder", 0)
    message = Job(id="legacy", task="t", queue="q", priority=5).encode()
    broker.client.zadd(keys.limit_waiting("q"),
                       {f"{LIMIT}\n{now_ms():015d}\n{message}": 0})
    broker.client.hset(keys.limit_waits("q"), f"concurrency:{LIMIT}", 1)
    settle(broker, "c1", holder)
    assert broker.client.xlen(keys.level_stream("q", 5)) == 1
    assert ids(broker.fetch("c2", ["q"], 2, None)) == ["legacy"]
    assert not broker.client.exists(keys.limit_waiting("q"), keys.limit_waits("q"))
