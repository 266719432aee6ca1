"""The cancel scripts on a real Redis, step by step: who wins when a cancel races a job's
fetch, its end, its retry and its worker's death (and what the record says)."""

from __future__ import annotations

import json
import time

from supervisor.broker import control, keys
from supervisor.broker.streams import Broker, EnqueueRequest, Settlement
from supervisor.core import outcome, record
from supervisor.core.job import Job


def enqueue(broker: Broker, job_id: str, due_ms: int = 0) -> Job:
    job = Job(id=job_id, task="t", queue="q")
    broker.enqueue(EnqueueRequest("q", job_id, job.encode(), record.of_new_job(job, due_ms),
                                  due_ms), int(time.time() * 1000))
    return job


def stored(broker: Broker, job_id: str) -> dict[str, object]:
    return json.loads(broker.client.get(keys.job("q", job_id)))  # type: ignore[no-any-return]


def take(broker: Broker) -> tuple[list[object], dict[tuple[str, str], str]]:
    deliveries = broker.fetch("c1", ["q"], 10, None)
    taken = {"q": {d.message and json.loads(d.message)["id"]: "c1 1.0" for d in deliveries}}
    return deliveries, broker.mark_taken(taken) if deliveries else {}


def test_a_job_cancelled_before_it_is_fetched_is_dropped_and_stays_cancelled(
        broker: Broker) -> None:
    enqueue(broker, "a")
    assert control.cancel(broker.client, "q", "a", "alice").what == "cancelled"
    assert broker.cancels_seen == set()
    deliveries, cancelled = take(broker)
    assert broker.cancels_seen == {"q"}  # the fetch saw the queue has cancels
    assert set(cancelled) == {("q", "a")} and json.loads(cancelled["q", "a"])["by"] == "alice"
    broker.settle("c1", [Settlement(deliveries[0], "a", outcome.dropped(60))],  # type: ignore[arg-type]
                  int(time.time() * 1000))
    assert stored(broker, "a")["state"] == "cancelled"
    assert stored(broker, "a")["cancelled"]["by"] == "alice"  # type: ignore[index]
    assert broker.client.hlen(keys.cancels("q")) == 0
    assert broker.client.xlen(keys.stream("q")) == 0
    assert control.cancel(broker.client, "q", "a", "bob")[2:] == ("ended", "cancelled")


def test_a_job_that_ends_before_its_cancel_lands_keeps_its_outcome_and_notes_the_request(
        broker: Broker) -> None:
    job = enqueue(broker, "b")
    deliveries, cancelled = take(broker)
    assert cancelled == {}
    assert control.cancel(broker.client, "q", "b", "alice").what == "running"
    done = outcome.Outcome(record.succeeded(job, 7, record.Attempt("c1", 1.0, 2.0)), 60)
    broker.settle("c1", [Settlement(deliveries[0], "b", done)],  # type: ignore[arg-type]
                  int(time.time() * 1000))
    data = stored(broker, "b")
    assert data["state"] == "succeeded" and data["result"] == 7
    assert data["cancel_requested"]["by"] == "alice"  # type: ignore[index]
    assert broker.client.hlen(keys.cancels("q")) == 0


def test_a_job_asked_to_be_cancelled_is_never_retried(broker: Broker) -> None:
    job = enqueue(broker, "c")
    deliveries, _ = take(broker)
    control.cancel(broker.client, "q", "c", "alice")
    retry = outcome.Outcome(record.retrying(job.next_attempt({}), record.Failure(
        "E", "boom", "", "error"), time.time() + 100), 60,
        retry_message=job.next_attempt({}).encode(), retry_due_ms=int(time.time() * 1000) + 100_000)
    broker.settle("c1", [Settlement(deliveries[0], "c", retry)],  # type: ignore[arg-type]
                  int(time.time() * 1000))
    assert broker.client.zcard(keys.delayed("q")) == 0  # the next attempt was dropped
    assert broker.client.xlen(keys.stream("q")) == 0
    assert stored(broker, "c")["state"] == "cancelled"


def test_a_job_asked_to_be_cancelled_that_fails_ends_cancelled_not_dead_lettered(
        broker: Broker) -> None:
    job = enqueue(broker, "f")
    deliveries, _ = take(broker)
    control.cancel(broker.client, "q", "f", "alice")
    failed = outcome.failed_for_good(job, record.Failure("E", "boom", "", "error"), 60,
                                     job.encode(), record.Attempt("c1", 1.0, 2.0))
    broker.settle("c1", [Settlement(deliveries[0], "f", failed)],  # type: ignore[arg-type]
                  int(time.time() * 1000))
    assert broker.client.xlen(keys.dead("q")) == 0
    assert stored(broker, "f")["state"] == "cancelled"


def test_a_running_job_whose_worker_died_is_dropped_as_cancelled_when_met_again(
        broker: Broker) -> None:
    enqueue(broker, "d")
    deliveries, _ = take(broker)
    assert control.cancel(broker.client, "q", "d", "alice").what == "running"
    # Its worker died: the job goes back to the stream with a requeued record.
    job = Job(id="d", task="t", queue="q")
    broker.hand_back("c1", [(deliveries[0], job.encode(), "d",  # type: ignore[list-item]
                             record.requeued(job))])
    again, cancelled = take(broker)
    assert set(cancelled) == {("q", "d")}
    broker.settle("c1", [Settlement(again[0], "d", outcome.dropped(60))],  # type: ignore[arg-type]
                  int(time.time() * 1000))
    data = stored(broker, "d")
    assert data["state"] == "cancelled" and data["cancelled"]["by"] == "alice"  # type: ignore[index]


def test_a_scheduled_job_cancelled_reads_cancelled_and_is_dropped_once_due(
        broker: Broker) -> None:
    enqueue(broker, "e", due_ms=int(time.time() * 1000) + 50)
    assert control.cancel(broker.client, "q", "e", "alice")[2:] == ("cancelled", "scheduled")
    assert stored(broker, "e")["state"] == "cancelled"
    assert broker.promote(["q"], int(time.time() * 1000) + 1000) == 1
    _, cancelled = take(broker)
    assert set(cancelled) == {("q", "e")}
    assert control.cancel(broker.client, "q", "nope", "alice").what == "unknown"
