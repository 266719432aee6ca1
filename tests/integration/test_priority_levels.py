"""Priority levels on a real Redis, step by step: the order of a fetch, and every path that
moves an entry (settle, retry, delay, hand back, claim, own pending, counts, cancel)
keeps it on its level."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from helpers import wait_until

from supervisor.broker import control, inspect, keys, levels
from supervisor.broker.streams import Broker, EnqueueRequest, Settlement
from supervisor.core import outcome, record
from supervisor.core.job import Job, decode


def now_ms() -> int:
    return int(time.time() * 1000)


def request(job_id: str, priority: int = 0, due_ms: int = 0, queue: str = "q") -> EnqueueRequest:
    job = Job(id=job_id, task="t", queue=queue, priority=priority)
    return EnqueueRequest(queue, job_id, job.encode(), record.of_new_job(job, due_ms), due_ms)


def ids(deliveries: list) -> list[str]:  # type: ignore[type-arg]
    return [decode(d.message).id for d in deliveries]


def test_a_fetch_takes_the_highest_level_first_and_no_more_than_asked(broker: Broker) -> None:
    broker.enqueue_many([request(f"low{n}") for n in range(50)], now_ms())
    broker.enqueue_many([request("mid", 5), request("top", 9), request("mid2", 5)], now_ms())
    assert broker.client.smembers(keys.levels("q")) == {"5", "9"}
    # This Broker has not seen the levels yet: its plain read of level 0 finds them in
    # the same round trip and reads them at once, first (one batch more, once).
    first = broker.fetch("c1", ["q"], 3, None)
    assert ids(first) == ["top", "mid", "mid2", "low0", "low1", "low2"]
    # Tagged entry ids: unique per (queue, id) across levels, untagged per stream.
    assert [levels.untag(d.entry_id)[0] for d in first] == [9, 5, 5, 0, 0, 0]
    broker.enqueue_many([request("mid3", 5), request("top2", 9)], now_ms())
    assert ids(broker.fetch("c1", ["q"], 3, None)) == ["top2", "mid3", "low3"]
    assert ids(broker.fetch("c1", ["q"], 10, None)) == [f"low{n}" for n in range(4, 14)]


def test_a_queue_without_priorities_has_no_level_keys(broker: Broker) -> None:
    broker.enqueue_many([request(f"j{n}") for n in range(5)], now_ms())
    assert len(broker.fetch("c1", ["q"], 10, None)) == 5
    assert not broker.client.exists(keys.levels("q"))
    assert broker.client.keys("*stream:p*") == []


def test_settle_acks_on_the_level_and_a_retry_due_now_goes_back_to_it(broker: Broker) -> None:
    broker.enqueue(request("a", 7), now_ms())
    (delivery,) = broker.fetch("c1", ["q"], 5, None)
    job = decode(delivery.message)
    retry = job.next_attempt({"n": 1}).encode()
    result = outcome.Outcome(record="{}", ttl=60, retry_message=retry, retry_due_ms=1)
    assert broker.settle("c1", [Settlement(delivery, "a", result)], now_ms()) == 1
    assert broker.client.xlen(keys.level_stream("q", 7)) == 1  # the retry, on level 7
    assert broker.client.xlen(keys.stream("q")) == 0
    (again,) = broker.fetch("c1", ["q"], 5, None)
    assert decode(again.message).attempt == 2
    assert decode(again.message).priority == 7


def test_a_delayed_job_is_promoted_to_its_level(broker: Broker) -> None:
    broker.enqueue_many([request("low"), request("late", 8, due_ms=now_ms() + 60_000)],
                        now_ms())
    assert broker.promote(["q"], now_ms() + 61_000) == 1
    assert broker.client.xlen(keys.level_stream("q", 8)) == 1
    assert ids(broker.fetch("c1", ["q"], 5, None)) == ["late", "low"]


def test_hand_back_claim_and_own_pending_keep_the_level(broker: Broker) -> None:
    broker.enqueue_many([request("top", 9), request("low")], now_ms())
    held = broker.fetch("c1", ["q"], 5, None)
    assert ids(broker.fetch("c1", ["q"], 5, None, own_pending=True)) == ["top", "low"]
    pending = broker.own_pending("c1", ["q"], set(), 5)
    assert sorted(ids(pending)) == ["low", "top"]
    assert {d.entry_id for d in pending} == {d.entry_id for d in held}
    # A dead consumer's entries are claimed from every level.
    assert {c["name"] for c in broker.consumers("q")} == {"c1"}
    claimed = broker.claim_dead("q", "c1", "c2")
    assert sorted(ids([c.delivery for c in claimed])) == ["low", "top"]
    # Handed back to the tail of the stream each came from.
    back = [(c.delivery, c.delivery.message, decode(c.delivery.message).id) for c in claimed]
    assert broker.hand_back("c2", back) == 2
    assert broker.client.xlen(keys.level_stream("q", 9)) == 1
    assert broker.client.xlen(keys.stream("q")) == 1
    assert ids(broker.fetch("c3", ["q"], 5, None)) == ["top", "low"]


def test_counts_and_cancel_by_queue_see_every_level(broker: Broker) -> None:
    broker.enqueue_many([request("a"), request("b", 3), request("c", 9)], now_ms())
    stats = inspect.queue_stats(broker.client, "q")
    assert (stats.waiting, stats.running) == (3, 0)
    taken = len(broker.fetch("c1", ["q"], 1, None))
    stats = inspect.queue_stats(broker.client, "q")
    assert (stats.waiting, stats.running) == (3 - taken, taken)
    assert sorted(control.jobs_of(broker.client, "q")) == ["a", "b", "c"]


def test_equal_entry_ids_on_two_levels_are_two_jobs(broker: Broker) -> None:
    # The same explicit id in two level streams: a worker keys held jobs by
    # (queue, entry id), so the delivery's id carries the level.
    for level, job_id in ((0, "zero"), (4, "four")):
        job = Job(id=job_id, task="t", queue="q", priority=level)
        broker.client.xadd(keys.level_stream("q", level), {"m": job.encode()}, id="5-1")
    broker.client.sadd(keys.levels("q"), 4)
    got = broker.fetch("c1", ["q"], 5, None)
    assert ids(got) == ["four", "zero"]
    assert len({(d.queue, d.entry_id) for d in got}) == 2
    settled = broker.settle("c1", [Settlement(d, decode(d.message).id,
                                              outcome.Outcome(record="{}", ttl=60)) for d in got],
                            now_ms())
    assert settled == 2


def test_strict_queue_order_and_weighted_plan_in_one_fetch(broker: Broker) -> None:
    broker.ensure_groups(["a", "b"])
    broker.enqueue_many([request(f"a{n}", queue="a") for n in range(3)]
                        + [request(f"b{n}", queue="b") for n in range(10)], now_ms())
    # Strict (the default plan): all of a, then b fills what is left.
    assert ids(broker.fetch("c1", ["a", "b"], 5, None)) == ["a0", "a1", "a2", "b0", "b1"]
    # A weighted plan: quotas first, the rest to queues that have more.
    broker.enqueue_many([request(f"a{n}", queue="a") for n in range(3, 10)], now_ms())
    got = broker.fetch("c1", ["a", "b"], 6, None, plan=[("a", 2), ("b", 4)])
    assert ids(got) == ["a3", "a4", "b2", "b3", "b4", "b5"]


def test_the_first_job_of_a_new_level_is_taken_by_the_next_fetch(broker: Broker) -> None:
    broker.enqueue_many([request(f"low{n}") for n in range(20)], now_ms())
    assert len(broker.fetch("c1", ["q"], 2, None)) == 2  # the level is unknown so far
    broker.enqueue(request("urgent", 9), now_ms())
    assert ids(broker.fetch("c1", ["q"], 2, None)) == ["urgent", "low2", "low3"]


def test_a_blocking_read_wakes_for_a_job_of_any_level(broker: Broker, redis_url: str) -> None:
    broker.enqueue(request("seen", 6), now_ms())
    assert ids(broker.fetch("c1", ["q"], 5, None)) == ["seen"]  # level 6 known, queue empty
    other = redis.Redis.from_url(redis_url, decode_responses=True)

    def add_once_blocked() -> None:
        wait_until(lambda: any(c.get("cmd") == "xreadgroup" for c in other.client_list()),
                   what="the fetch blocks")
        job = Job(id="later", task="t", queue="q", priority=6)
        other.xadd(keys.level_stream("q", 6), {"m": job.encode()})

    adder = threading.Thread(target=add_once_blocked)
    adder.start()
    assert ids(broker.fetch("c1", ["q"], 5, 5000)) == ["later"]
    adder.join()


def test_the_async_producer_puts_jobs_on_their_levels(broker: Broker, redis_url: str) -> None:
    import asyncio

    import redis.asyncio

    from supervisor.broker.async_streams import AsyncBroker

    async def produce() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        abroker = AsyncBroker(client)
        await abroker.enqueue(request("one", 4), now_ms())
        await abroker.enqueue_many([request("low"), request("two", 8), request("three", 4)],
                                   now_ms())
        await client.aclose()

    asyncio.run(produce())
    assert ids(broker.fetch("c1", ["q"], 10, None)) == ["two", "one", "three", "low"]


def test_apply_async_and_enqueue_many_take_the_task_s_or_their_own_priority(
        broker: Broker, redis_url: str) -> None:
    from supervisor import enqueue_many, task
    from supervisor.api import producer

    @task(name="tests.prio.t", queue="q", priority=3)
    def prio_task(n: int) -> int:
        return n

    producer._overrides.clear()
    producer.configure(redis_url=redis_url)
    try:
        first = prio_task.delay(0)
        top = prio_task.apply_async((1,), priority=9)
        many = enqueue_many([prio_task.s(2), prio_task.s(3).set(priority=0)])
        with pytest.raises(ValueError, match="from 0 to 9"):
            prio_task.apply_async((4,), priority=10)
    finally:
        producer._overrides.clear()
        producer._producer = None
    assert ids(broker.fetch("c1", ["q"], 10, None)) == [top.id, first.id, many[0].id,
                                                         many[1].id]


def test_a_requeued_dead_letter_goes_back_to_its_level(broker: Broker, redis_url: str) -> None:
    from supervisor.api.producer import Producer
    from supervisor.config import load_config

    dead = Job(id="dead1", task="t", queue="q", priority=6, attempt=3).encode()
    broker.enqueue(request("low"), now_ms())
    Producer(load_config({"redis_url": redis_url}, env={})).requeue(dead)
    got = broker.fetch("c1", ["q"], 10, None)
    assert ids(got) == ["dead1", "low"]
    assert decode(got[0].message).attempt == 1


def test_a_periodic_tick_of_a_task_with_a_priority_lands_on_its_level(broker: Broker) -> None:
    from supervisor.broker.streams import Tick

    broker.enqueue(request("low"), now_ms())
    tick = Tick("every", 60, 120, '{"tick": 60}')
    assert broker.fire_tick(tick, request("tick-60", 5), now_ms()) == 1
    assert broker.fire_tick(tick, request("tick-60", 5), now_ms()) == 0  # fired once
    assert ids(broker.fetch("c1", ["q"], 10, None)) == ["tick-60", "low"]


def test_unique_jobs_of_a_level_list_it_in_the_step_that_adds_them(broker: Broker) -> None:
    # The levels set is the key after the unique locks (enqueue.lua): a lock taken and one
    # refused in the same call leave the level listed, and the job is read from it.
    first = request("u1", 7)._replace(unique="digest-a", unique_ttl=60)
    same = request("u2", 7)._replace(unique="digest-a", unique_ttl=60)
    other = request("u3", 7)._replace(unique="digest-b", unique_ttl=60)
    assert broker.enqueue_many([first, same, other], now_ms()) == [True, "u1", True]
    assert broker.client.smembers(keys.levels("q")) == {"7"}
    assert broker.enqueue(request("u4", 2)._replace(unique="digest-c", unique_ttl=60),
                          now_ms()) is True
    assert broker.client.smembers(keys.levels("q")) == {"2", "7"}
    assert ids(broker.fetch("c1", ["q"], 10, None)) == ["u1", "u3", "u4"]
