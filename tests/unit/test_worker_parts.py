"""Pure parts of the worker: fetch sizing, liveness of consumers, outcomes."""

from __future__ import annotations

import json
import os

from supervisor.api.registry import task
from supervisor.core import outcome
from supervisor.core.consumer import ConsumerName
from supervisor.core.job import Job
from supervisor.core.record import Attempt
from supervisor.errors import JobTimeout
from supervisor.worker.recovery import consumer_for_process, dead_local_consumers, process_alive
from supervisor.worker.sizing import HOLD_TARGET, FetchSizer


def test_fetch_size_holds_about_a_tenth_of_a_second_of_work() -> None:
    sizer = FetchSizer(cap=64)
    assert sizer.count == 1  # nothing known yet: one at a time
    for _ in range(50):
        sizer.observe(0.0001)
    assert sizer.count == 64  # fast jobs: full batches
    for _ in range(50):
        sizer.observe(1.0)
    assert sizer.count == 1  # slow jobs: never hoard work another worker could start
    for _ in range(50):
        sizer.observe(HOLD_TARGET / 10)
    assert 5 <= sizer.count <= 12


def test_jobs_sent_to_wait_grow_the_fetch_to_full_batches() -> None:
    sizer = FetchSizer(cap=64)
    for _ in range(50):
        sizer.observe(0.04)
    assert sizer.count == 2  # jobs of 40 ms: two per fetch
    sizer.sent_to_wait(0)
    assert sizer.count == 2
    sizer.sent_to_wait(30)  # a backlog of limited jobs is gated by the batch
    assert sizer.count == 64


def test_consumer_names_and_liveness() -> None:
    me = consumer_for_process("node-a")
    assert ConsumerName.parse(str(me)) == me
    assert process_alive(me)
    assert not process_alive(ConsumerName("node-a", os.getpid(), "1.00"))  # pid reused
    consumers = [{"name": str(me)}, {"name": "node-a/999999/1.00"}, {"name": "node-b/1/1.00"},
                 {"name": "garbage"}]
    assert dead_local_consumers(consumers, "node-a") == ["node-a/999999/1.00"]


@task(stop=None, timeout=1)
def sample() -> None: ...


def test_outcomes() -> None:
    job = Job(id="j", task=sample.name, queue="default", host="producer-host")
    attempt = Attempt("node/1/2.00", 100.0, 101.5)
    done = outcome.succeeded(sample, job, {"a": 1}, 10, attempt)
    record = json.loads(done.record)
    assert record["state"] == "succeeded" and record["result"] == {"a": 1}
    assert record["attempts"] == [{"attempt": 1, "worker": "node/1/2.00", "started": 100.0,
                                   "finished": 101.5, "outcome": "succeeded"}]
    assert record["enqueued_by"] == "producer-host"
    retry = outcome.failed(sample, job, ValueError("x"), 10, job.encode(), attempt)
    following = json.loads(retry.retry_message)
    assert json.loads(retry.record)["state"] == "retrying" and following["attempt"] == 2
    assert following["h"][0]["exc_type"] == "ValueError"  # history travels with the job
    third = Job(id="j", task=sample.name, queue="default", attempt=3)
    last = outcome.failed(sample, third, JobTimeout("late"), 10, job.encode(), attempt)
    letter = json.loads(last.dead_letter)
    assert json.loads(last.record)["state"] == "failed" and letter["reason"] == "timeout"
    assert letter["attempts"] == 3 and json.loads(letter["job"])["id"] == "j"


def test_a_bound_tasks_context_and_a_signature_name_their_task_as_a_task() -> None:
    """What a user's type checker sees: `self.task.delay(...)` in a bound task and
    `sig.task.apply_async(...)` are Task methods, not those of a narrower protocol."""
    import typing

    from supervisor.api.task import Signature, Task, TaskContext

    assert typing.get_type_hints(TaskContext.__init__)["task"] == Task[typing.Any, typing.Any]
    assert typing.get_type_hints(Signature)["task"] == Task[typing.Any, typing.Any]
