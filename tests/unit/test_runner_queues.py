"""The runner keeps the jobs of one batch apart even when their stream entry ids are equal.

Entry ids are unique only within one stream: two queues' streams written in
the same millisecond hand out the same id. A batch fetched from several
queues therefore holds deliveries that differ only by their queue.
"""

from __future__ import annotations

from supervisor.api.registry import task
from supervisor.broker.streams import Delivery
from supervisor.config import Config
from supervisor.core.job import Job
from supervisor.fork.status import ChildStatus
from supervisor.worker.runner import Runner

ran: list[tuple[str, int]] = []


@task(name="unit.queue_a_job", queue="qa")
def queue_a_job(i: int) -> str:
    ran.append(("qa", i))
    return f"a{i}"


@task(name="unit.queue_b_job", queue="qb")
def queue_b_job(i: int) -> str:
    ran.append(("qb", i))
    return f"b{i}"


def _delivery(queue: str, entry_id: str, job: Job) -> Delivery:
    return Delivery(queue, entry_id, job.encode())


def test_same_entry_id_in_two_queues_runs_each_job_once() -> None:
    ran.clear()
    first = Job(id="job-a", task=queue_a_job.name, queue="qa", args=(1,))
    second = Job(id="job-b", task=queue_b_job.name, queue="qb", args=(2,))
    batch = [_delivery("qa", "1796150284741-0", first),
             _delivery("qb", "1796150284741-0", second)]
    runner = Runner(Config(), "node/1/1.00", ChildStatus())
    runner.decode_batch(batch)
    settled = [runner.process(delivery) for delivery in batch]
    assert ran == [("qa", 1), ("qb", 2)]
    assert [(s.delivery.queue, s.job_id) for s in settled] == [("qa", "job-a"), ("qb", "job-b")]
    assert '"result":"a1"' in settled[0].outcome.record
    assert '"result":"b2"' in settled[1].outcome.record


def test_invalid_messages_with_equal_entry_ids_get_distinct_job_ids() -> None:
    batch = [Delivery("qa", "5-0", "not json"), Delivery("qb", "5-0", "not json")]
    runner = Runner(Config(), "node/1/1.00", ChildStatus())
    runner.decode_batch(batch)
    ids = [runner.process(delivery).job_id for delivery in batch]
    assert ids[0] != ids[1]


def test_a_cancel_that_arrives_after_prepare_stops_the_job_before_it_begins() -> None:
    """Asked after the job was prepared (the chores thread's poll), before its function was
    called: the job does not run and ends with JobCancelled; only its own queue's job is
    stopped when the same explicit id waits in another queue."""
    from supervisor.errors import JobCancelled

    ran.clear()
    runner = Runner(Config(), "node/1/1.00", ChildStatus())
    doomed = Job(id="same", task=queue_a_job.name, queue="qa", args=(1,))
    spared = Job(id="same", task=queue_b_job.name, queue="qb", args=(2,))
    runner.cancelled["qa", "same"] = '{"by":"ops","reason":"requested"}'
    assert isinstance(runner.execute(queue_a_job, doomed), JobCancelled)
    assert runner.execute(queue_b_job, spared) == "b2"
    assert ran == [("qb", 2)]
