"""Poison pills with neighbours: a job whose worker died while it ran beside others is a
suspect, not counted a crash, and runs alone until it ends or kills a worker alone."""

from __future__ import annotations

import json

from worker_fakes import WorkerHarness, deliveries

from supervisor.core import orphan
from supervisor.core.job import Job, decode
from supervisor.core.retry import RetryPolicy
from supervisor.worker.recovery import Recovery


class Rules:
    timeout: float | None = None
    policy = RetryPolicy()
    ignore_result = False
    name = "tests.task"


def job(**fields: object) -> Job:
    return Job(id="j1", task="tests.task", queue="default", **fields)  # type: ignore[arg-type]


def test_a_job_that_shared_its_dead_worker_goes_back_a_suspect_its_crashes_unchanged() -> None:
    verdict = orphan.verdict(job(), Rules(), job().encode(), 100, "node/1/1.00", 1, 60,
                             alone=False)
    assert verdict.kind == orphan.REQUEUE  # never dead-lettered, even at max_crashes 1
    back = decode(verdict.message)
    assert back.suspect and back.crashes == 0
    assert "beside others" in json.dumps(back.history[-1])  # the timeline says why


def test_a_suspect_that_kills_its_worker_alone_counts_and_stays_a_suspect() -> None:
    verdict = orphan.verdict(job(suspect=True), Rules(), "", 100, "node/1/1.00", 3, 60)
    back = decode(verdict.message)
    assert verdict.kind == orphan.REQUEUE and back.crashes == 1 and back.suspect
    verdict = orphan.verdict(job(suspect=True, crashes=2), Rules(), "", 100, "node/1/1.00",
                             3, 60)
    assert verdict.kind == orphan.POISON and verdict.crashes == 3


def test_a_suspect_that_runs_to_its_end_is_cleared_and_the_flag_travels_only_when_set() -> None:
    assert decode(job(suspect=True).encode()).suspect
    assert "suspect" not in job().encode()
    assert not job(suspect=True).next_attempt({}).suspect


class ClaimingBroker:
    def __init__(self, held: dict[str, list[str]]) -> None:
        self.held = held  # queue -> messages the dead consumer held there

    def consumers(self, queue: str) -> list[dict[str, object]]:
        return [{"name": "unit/999999/1.00"}]

    def claim_dead(self, queue: str, dead: str, claimer: str, batch: int = 500,
                   *, node: str | None = None) -> list[object]:
        from supervisor.broker.streams import Claimed, Delivery

        return [Claimed(Delivery(queue, f"{n}-0", message), 10, 1)
                for n, message in enumerate(self.held.get(queue, []))]

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]:
        return names


def test_recovery_judges_alone_from_everything_the_dead_worker_held_in_every_queue() -> None:
    from supervisor.api.registry import task
    from supervisor.config import Config
    from supervisor.worker.metrics import NullMetrics

    @task(name="tests.suspects.t")
    def t() -> None:
        return None

    message = Job(id="a", task="tests.suspects.t", queue="qa").encode()
    other = Job(id="b", task="tests.suspects.t", queue="qb").encode()
    config = Config(queues=("qa", "qb"), node_name="unit", max_crashes=1)

    def sweep(held: dict[str, list[str]]) -> list[Job]:
        recovery = Recovery(config, "unit/1/1.00", ClaimingBroker(held), NullMetrics(),
                            lambda delivery: None)  # type: ignore[arg-type, return-value]
        settle, requeue = recovery.sweep(["qa", "qb"])
        return [decode(item[1]) for item in requeue] + [s for s in settle]  # type: ignore[misc]

    shared = sweep({"qa": [message], "qb": [other]})  # one job in each queue: two in all
    assert [(j.id, j.suspect, j.crashes) for j in shared] == [("a", True, 0), ("b", True, 0)]
    alone = sweep({"qa": [message]})  # the only job it held: counted (max_crashes 1: dead)
    assert len(alone) == 1 and not isinstance(alone[0], Job)


def test_at_concurrency_1_a_suspect_in_a_batch_runs_alone() -> None:
    h = WorkerHarness()
    batch = deliveries(4)
    h.runner.suspect = {"3-0"}
    h.worker.sizer.average = 0.001  # fast jobs: the whole batch is fetched
    h.broker.batches.append(batch)
    h.worker.work_through(h.worker.fetch())
    # The two before it were settled before it started; the one behind it went back.
    assert h.runner.ran == ["1-0", "2-0", "3-0"]
    assert [s.delivery.entry_id for s in h.broker.settled] == ["1-0", "2-0", "3-0"]
    assert [d.entry_id for d in h.broker.handed_back] == ["4-0"]
