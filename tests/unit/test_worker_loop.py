"""The worker loop's decisions, with fakes at its seams and a fake clock."""

from __future__ import annotations

import pytest
import redis
from worker_fakes import WorkerHarness, deliveries

from supervisor.config import Config
from supervisor.errors import CHILD_EXIT_RECYCLE
from supervisor.worker.sizing import HOLD_TARGET, FetchSizer, job_share, jobs_jitter

# --- may_start_another ----------------------------------------------------------


def test_after_term_jobs_in_hand_start_only_within_the_hold_target() -> None:
    h = WorkerHarness()
    assert h.worker.may_start_another(), "not stopping: always"
    h.term()
    assert h.worker.may_start_another()
    h.clock.advance(HOLD_TARGET * 0.9)
    assert h.worker.may_start_another(), "the job it was about to begin still starts"
    h.clock.advance(HOLD_TARGET * 0.2)
    assert not h.worker.may_start_another(), "the rest goes back to the queue"


def test_a_quick_stop_or_a_recycle_starts_nothing_more() -> None:
    h = WorkerHarness()
    h.term()
    h.worker.quick = True
    assert not h.worker.may_start_another()
    h = WorkerHarness()
    h.term()
    h.worker.recycling = True
    assert not h.worker.may_start_another()


def test_term_in_the_middle_of_a_batch_finishes_the_next_job_and_hands_back_the_rest() -> None:
    h = WorkerHarness()
    batch = deliveries(5)
    h.runner.durations = {"1-0": 0.01, "2-0": 0.2}
    h.term()  # as if it arrived while the first job ran
    h.worker.work_through(batch)
    assert h.runner.ran == ["1-0", "2-0"], "started within HOLD_TARGET of the TERM"
    assert [d.entry_id for d in h.worker.held] == ["3-0", "4-0", "5-0"]
    assert [s.delivery.entry_id for s in h.broker.settled] == ["1-0", "2-0"]


# --- release_behind_slow_job --------------------------------------------------------


def test_a_batch_of_fast_jobs_runs_whole() -> None:
    h = WorkerHarness()
    h.worker.work_through(deliveries(10))  # 1 ms each: 10 ms, within the estimate
    assert len(h.runner.ran) == 10 and h.broker.handed_back == []


def test_jobs_behind_a_job_known_to_be_slow_are_given_back_before_it_starts() -> None:
    h = WorkerHarness()
    batch = deliveries(4)
    h.runner.expected = {"2-0": HOLD_TARGET * 5}
    h.worker.work_through(batch)
    assert [d.entry_id for d in h.broker.handed_back] == ["3-0", "4-0"]
    assert h.runner.ran == ["1-0", "2-0"], "the slow one still runs here"


def test_once_a_batch_overran_twice_its_estimate_the_rest_is_given_back() -> None:
    h = WorkerHarness()
    batch = deliveries(4)
    h.runner.durations = {"1-0": HOLD_TARGET * 2.5}  # slower than the recent ones
    h.worker.work_through(batch)
    assert h.runner.ran == ["1-0", "2-0"]
    assert [d.entry_id for d in h.broker.handed_back] == ["3-0", "4-0"]


# --- own pending entries in fetch ------------------------------------------------------


def test_a_failed_fetch_reads_our_own_pending_entries_first_until_none_are_left() -> None:
    h = WorkerHarness()
    h.worker.sizer.cap, h.worker.sizer.average = 4, 1e-6  # batches of 4
    h.broker.errors.append(redis.exceptions.ConnectionError("reply lost"))
    before = h.clock.now
    assert h.worker.fetch() == []
    assert h.clock.now > before, "paused before trying again"
    assert h.worker.check_own_pending
    h.broker.batches.extend([deliveries(4), deliveries(2, start=5), deliveries(1, start=9)])
    assert len(h.worker.fetch()) == 4
    assert h.worker.check_own_pending, "a full batch: there may be more"
    assert len(h.worker.fetch()) == 2
    assert not h.worker.check_own_pending, "a short batch: none left"
    h.worker.fetch()
    assert [own for _, own in h.broker.fetches] == [False, True, True, False]


def test_every_sweep_makes_the_next_fetch_read_own_pending_entries() -> None:
    h = WorkerHarness()
    h.worker.fetch()
    h.worker.housekeeping(h.clock.monotonic())
    h.worker.fetch()
    assert [own for _, own in h.broker.fetches] == [False, True]


@pytest.mark.parametrize("error", [
    redis.exceptions.ClusterError("TTL exhausted."),  # a slot migrating under a script
    redis.exceptions.TryAgainError("TRYAGAIN"),
    redis.exceptions.ClusterDownError("CLUSTERDOWN"),
    redis.exceptions.ConnectionError("reset"),
])
def test_housekeeping_rides_out_a_cluster_moving_or_failing_over(
        error: redis.exceptions.RedisError) -> None:
    h = WorkerHarness()
    h.broker.promote_errors.append(error)
    h.worker.housekeeping(h.clock.monotonic())  # no raise: the worker lives on
    assert not h.broker.promote_errors, "the promote was tried"
    assert h.worker.check_own_pending


def test_housekeeping_dies_of_what_no_retry_can_fix() -> None:
    h = WorkerHarness()
    h.broker.promote_errors.append(redis.exceptions.ResponseError("ERR unknown command"))
    with pytest.raises(redis.exceptions.ResponseError):
        h.worker.housekeeping(h.clock.monotonic())


# --- fetch sizing with a job limit ------------------------------------------------------


def test_a_child_never_fetches_more_than_it_will_run_before_its_recycle() -> None:
    h = WorkerHarness(Config(queues=("default",), node_name="unit", max_jobs_per_child=5),
                      child=True)
    h.worker.sizer.average = 1e-6  # fast jobs: the sizer alone would take 64
    assert h.worker.fetch_count() == 5
    h.worker.jobs_done = 3
    assert h.worker.fetch_count() == 2
    h.worker.jobs_done = 5
    assert h.worker.fetch_count() == 1, "never zero: COUNT 0 would mean everything"


def test_fetch_size_follows_recent_durations_within_the_cap() -> None:
    sizer = FetchSizer(cap=8)
    for _ in range(50):
        sizer.observe(0.0001)
    assert sizer.count == 8
    for _ in range(50):
        sizer.observe(HOLD_TARGET / 4)
    assert sizer.count == 4


# --- the recycle: decided by the child alone ---------------------------------------------


def test_a_child_fetches_no_more_than_its_share_runs_it_and_exits_72() -> None:
    config = Config(queues=("default",), node_name="unit", max_jobs_per_child=3)
    h = WorkerHarness(config, child=True)
    h.broker.batches.append(deliveries(5))
    h.worker.sizer.average = 1e-6
    assert h.worker.run() == CHILD_EXIT_RECYCLE
    assert h.runner.ran == ["1-0", "2-0", "3-0"]
    assert len(h.broker.settled) == 3
    assert h.broker.fetches[0][0] == 3, "it fetched only its share"
    assert h.chores.calls == ["beat", "start", "stop"], "beat before the first fetch"


def test_a_recycling_child_does_not_start_a_job_it_holds() -> None:
    config = Config(queues=("default",), node_name="unit", max_jobs_per_child=2)
    h = WorkerHarness(config, child=True)
    h.worker.work_through(deliveries(4))
    assert h.worker.recycling and h.worker.stopping
    assert h.runner.ran == ["1-0", "2-0"]
    assert [d.entry_id for d in h.worker.held] == ["3-0", "4-0"], "handed back on the way out"


def test_the_share_has_up_to_ten_percent_jitter_drawn_by_the_child() -> None:
    config = Config(queues=("default",), node_name="unit", max_jobs_per_child=100)
    assert WorkerHarness(config, child=True, draw=0.0).worker.job_limit == 100
    assert WorkerHarness(config, child=True, draw=0.999).worker.job_limit == 110
    assert job_share(0, 0.5) == 0 and job_share(5, 0.999) == 5  # no jitter below 10
    assert [jobs_jitter(100, d) for d in (0.0, 0.5, 0.999)] == [0, 5, 10]
    assert jobs_jitter(0, 0.99) == 0


def test_a_foreground_worker_never_recycles() -> None:
    config = Config(queues=("default",), node_name="unit", max_jobs_per_child=2)
    h = WorkerHarness(config)
    assert h.worker.job_limit == 0
    h.worker.work_through(deliveries(5))
    assert len(h.runner.ran) == 5 and not h.worker.stopping


def test_settled_jobs_are_counted_per_queue_for_status() -> None:
    h = WorkerHarness(Config(queues=("a", "b"), node_name="unit"))
    h.worker.work_through(deliveries(2, queue="a") + deliveries(1, queue="b", start=3))
    h.worker.housekeeping(h.clock.monotonic())
    assert h.broker.done == {"a": 2, "b": 1}
