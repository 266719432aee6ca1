"""The producer's enqueue path against the private Redis (no worker needed).

What it must keep while being fast: records and stream entries written
together, idempotency by job id across retries, all-or-nothing validation of
a batch, the script reloaded when Redis forgot it, one producer per process.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections.abc import Iterable
from typing import Any

import pytest
import redis
import sample_tasks

from supervisor import enqueue_many, task
from supervisor.broker import keys
from supervisor.broker.streams import Broker, EnqueueRequest
from supervisor.core.job import Job, decode
from supervisor.core.record import enqueued as enqueued_record
from supervisor.core.record import of_new_job as initial_record
from supervisor.errors import InvalidMessage, PayloadTooLarge

pytestmark = pytest.mark.usefixtures("producer")


@task(name="test_enqueue.elsewhere", queue="elsewhere", result_ttl=120)
def elsewhere(x: int) -> int:
    return x


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def stream_ids(client: redis.Redis, queue: str) -> list[str]:
    return [decode(fields["m"]).id for _, fields in client.xrange(keys.stream(queue))]


def record(client: redis.Redis, queue: str, job_id: str) -> dict[str, Any]:
    text = client.get(keys.job(queue, job_id))
    assert text is not None, f"no record for {job_id}"
    return dict(json.loads(text))


def test_enqueue_many_over_two_queues_keeps_order_records_and_ttls(client: redis.Redis) -> None:
    signatures = [elsewhere.s(i) if i % 3 == 0 else sample_tasks.echo.s(i) for i in range(1200)]
    results = enqueue_many(signatures)

    assert [r.queue for r in results] == [s.task.queue for s in signatures]
    assert len({r.id for r in results}) == 1200
    assert all(re.fullmatch(r"[0-9a-f]{32}", r.id) for r in results)
    # Each queue's stream holds its jobs in the order given.
    assert stream_ids(client, "elsewhere") == [r.id for r in results if r.queue == "elsewhere"]
    assert stream_ids(client, "default") == [r.id for r in results if r.queue == "default"]
    assert client.smembers(keys.QUEUES) == {"default", "elsewhere"}
    for index in (0, 1, 599, 1199):
        job = decode(client.xrange(keys.stream(results[index].queue))[0][1]["m"])
        assert job.attempt == 1 and job.history == ()
        rec = record(client, results[index].queue, results[index].id)
        assert rec["state"] == "queued" and rec["attempt"] == 1
        assert rec["task"] == signatures[index].task.name
        assert rec["queue"] == results[index].queue
        assert rec["enqueued_by"] and abs(rec["created"] - time.time()) < 60
        assert results[index].state == "queued"
    ttl = client.ttl(keys.job("elsewhere", results[0].id))
    assert 0 < ttl <= 120  # the task's own result_ttl
    assert client.ttl(keys.job("default", results[1].id)) > 120  # the configured default


def test_a_signatures_own_queue_takes_its_jobs_in_enqueue_many(client: redis.Redis) -> None:
    signatures = [sample_tasks.echo.s(i).set(queue="bulk") if i % 2 else sample_tasks.echo.s(i)
                  for i in range(10)]
    results = enqueue_many(signatures)
    assert [r.queue for r in results] == ["default", "bulk"] * 5
    assert stream_ids(client, "bulk") == [r.id for r in results if r.queue == "bulk"]
    assert record(client, "bulk", results[1].id)["queue"] == "bulk"
    assert decode(client.xrange(keys.stream("bulk"))[0][1]["m"]).queue == "bulk"
    assert "bulk" in client.smembers(keys.QUEUES)
    both = sample_tasks.echo.s(1).set(queue="bulk", priority=9)
    assert (both.queue, both.priority) == ("bulk", 9)
    with pytest.raises(ValueError, match="queue must be a queue name"):
        sample_tasks.echo.s(1).set(queue="")
    for bad in (-1, "5", True):
        with pytest.raises(ValueError, match="countdown must be seconds >= 0"):
            sample_tasks.echo.s(1).set(countdown=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority=, queue= and/or countdown="):
        sample_tasks.echo.s(1).set()


def test_broker_enqueue_many_flags_duplicates_in_input_order(redis_url: str,
                                                             client: redis.Redis) -> None:
    broker = Broker(redis.Redis.from_url(redis_url, decode_responses=True))

    def request(job_id: str, queue: str) -> EnqueueRequest:
        job = Job(id=job_id, task="sample_tasks.echo", queue=queue, args=(job_id,))
        return EnqueueRequest(queue, job_id, job.encode(), initial_record(job, 0))

    now_ms = int(time.time() * 1000)
    assert broker.enqueue(request("a", "q1"), now_ms) is True
    assert broker.enqueue(request("a", "q1"), now_ms) is False
    wanted = [("a", "q1"), ("b", "q2"), ("c", "q1"), ("b", "q2"), ("d", "q2"), ("e", "q1"),
              ("a", "q2")]
    # A generator, with chunks smaller than the batch: flags still line up.
    flags = broker.enqueue_many((request(i, q) for i, q in wanted), now_ms, chunk=2)
    assert flags == [False, True, True, False, True, True, True]
    assert stream_ids(client, "q1") == ["a", "c", "e"]
    assert stream_ids(client, "q2") == ["b", "d", "a"]
    assert broker.enqueue_many([], now_ms) == []
    assert client.smembers(keys.QUEUES) == {"q1", "q2"}


def test_a_bad_job_in_a_batch_enqueues_nothing(client: redis.Redis) -> None:
    from supervisor import configure

    configure(max_payload_bytes=1000)
    signatures = [sample_tasks.echo.s(i) for i in range(1500)]
    signatures.insert(1400, sample_tasks.echo.s("x" * 2000))
    with pytest.raises(PayloadTooLarge):
        enqueue_many(signatures)
    with pytest.raises(InvalidMessage, match="JSON"):
        enqueue_many([sample_tasks.echo.s(1), sample_tasks.echo.s(object())])
    assert client.xlen(keys.stream("default")) == 0
    assert client.keys("sv:{default}:job:*") == []


def test_the_script_is_loaded_again_after_script_flush(client: redis.Redis) -> None:
    first = sample_tasks.echo.delay(1)
    client.script_flush()
    second = sample_tasks.echo.delay(2)
    client.script_flush()
    batch = enqueue_many(sample_tasks.echo.s(i) for i in range(1100))
    client.script_flush()
    many_queues = enqueue_many([sample_tasks.echo.s(1), elsewhere.s(2)])
    assert stream_ids(client, "default") == [first.id, second.id, *[r.id for r in batch],
                                             many_queues[0].id]
    assert stream_ids(client, "elsewhere") == [many_queues[1].id]


def test_a_batch_retried_after_a_lost_connection_adds_each_job_once(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.api.producer import current_producer

    broker = current_producer().broker
    real = broker.enqueue_many
    tries: list[int] = []

    def flaky(requests: Iterable[Any], now_ms: int, chunk: int = 500) -> list[bool]:
        tries.append(now_ms)
        if len(tries) == 1:
            # Some chunks reach Redis, then the connection drops mid-batch.
            requests = list(requests)
            real(requests[:700], now_ms)
            raise redis.exceptions.ConnectionError("connection lost mid-batch")
        return real(requests, now_ms, chunk)

    monkeypatch.setattr(broker, "enqueue_many", flaky)
    results = enqueue_many(sample_tasks.echo.s(i) for i in range(1000))
    assert len(tries) == 2
    assert stream_ids(client, "default") == [r.id for r in results]


def test_delay_writes_queued_and_scheduled_records(client: redis.Redis) -> None:
    now = time.time()
    plain = sample_tasks.echo.delay(1, y=2)
    later = sample_tasks.echo.apply_async(args=(3,), countdown=60)
    job = decode(client.xrange(keys.stream("default"))[0][1]["m"])
    assert (job.id, job.args, job.kwargs) == (plain.id, (1,), {"y": 2})
    assert record(client, "default", plain.id)["state"] == "queued"
    scheduled = record(client, "default", later.id)
    assert scheduled["state"] == "scheduled"
    assert now + 59 < scheduled["due"] < time.time() + 61
    assert client.zcard(keys.delayed("default")) == 1
    with pytest.raises(ValueError, match="not both"):
        sample_tasks.echo.apply_async(countdown=1, eta=plain_eta())
    with pytest.raises(ValueError, match="timezone-aware"):
        sample_tasks.echo.apply_async(eta=plain_eta().replace(tzinfo=None))


def plain_eta() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_enqueued_record_is_initial_record_of_the_same_job() -> None:
    job = Job(id="abc", task="t.x", queue="q", args=(1,), host="node-1")
    for due_ms in (0, 1_900_000_000_000):
        assert json.loads(enqueued_record(job.id, job.task, job.queue, job.created, job.host,
                                          due_ms, args=job.args, kwargs=job.kwargs)) == \
            json.loads(initial_record(job, due_ms))
    assert json.loads(initial_record(job, 0)) == {
        "id": "abc", "task": "t.x", "queue": "q", "state": "queued", "created": job.created,
        "enqueued_by": "node-1", "attempt": 1, "args": [1], "kwargs": {}}


_inherited: list[Any] = []  # the parent's producer, as the forked child sees it


def _child_enqueue(queue: multiprocessing.Queue[Any]) -> None:
    from supervisor.api.producer import current_producer
    from supervisor.core.job import new_job_id

    fresh = current_producer() is not _inherited[0]
    result = sample_tasks.echo.delay("from the child")
    queue.put((fresh, result.id, [new_job_id() for _ in range(3)]))


def test_a_forked_child_gets_its_own_producer_and_ids(client: redis.Redis) -> None:
    from supervisor.api.producer import current_producer
    from supervisor.core.job import new_job_id

    parent = current_producer()
    _inherited[:] = [parent]
    sample_tasks.echo.delay("warm")  # the parent's connection is open at the fork
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[Any] = context.Queue()
    process = context.Process(target=_child_enqueue, args=(queue,))
    process.start()
    fresh, child_job, child_ids = queue.get(timeout=30)
    process.join(timeout=30)
    assert process.exitcode == 0
    assert fresh
    assert current_producer() is parent
    parent_ids = [new_job_id() for _ in range(3)]
    assert not set(parent_ids) & set(child_ids)  # the child reseeded its generator
    assert sample_tasks.echo.delay("parent again").state == "queued"
    assert child_job in stream_ids(client, "default")
