"""The status block's deferred writes: what the master sees between jobs of a batch."""

from __future__ import annotations

import time

from supervisor.fork.status import ChildPhase, ChildStatus


def booted() -> ChildStatus:
    status = ChildStatus()
    status.mark_booted()
    return status


def test_a_deferred_job_end_is_written_by_publish() -> None:
    status = booted()
    status.job_begins("job-1", "tasks.quick", None)
    status.job_ends(False, publish=False)
    seen = status.read()
    assert seen.phase is ChildPhase.BUSY and seen.jobs_done == 0  # not written yet
    status.publish()
    seen = status.read()
    assert seen.phase is ChildPhase.IDLE and seen.jobs_done == 1 and seen.job_id == ""


def test_the_next_job_start_carries_the_previous_end() -> None:
    status = booted()
    status.job_begins("job-1", "tasks.quick", None)
    status.job_ends(True, publish=False)
    status.job_begins("job-2", "tasks.quick", None)
    seen = status.read()
    assert (seen.job_id, seen.jobs_done, seen.jobs_failed) == ("job-2", 1, 1)


def test_a_job_with_a_deadline_is_written_at_once() -> None:
    status = booted()
    status.job_begins("job-1", "tasks.timed", 5.0)
    assert status.read().job_deadline > 0.0
    status.job_ends(False, publish=False)
    seen = status.read()
    assert seen.job_deadline == 0.0 and seen.phase is ChildPhase.IDLE


def test_publish_with_nothing_unwritten_keeps_the_latest_beat() -> None:
    status = booted()
    status.job_begins("job-1", "tasks.quick", None)
    status.job_ends(False)  # written at once
    before = time.monotonic()
    status.beat()  # what SIGALRM does while the worker idles
    status.publish()  # the end of an empty fetch
    assert status.read().heartbeat >= before


# --- one record per slot (--concurrency K) ---------------------------------------


def test_a_many_slot_block_shows_every_job_and_counts_each_end() -> None:
    status = ChildStatus(slots=4)
    status.mark_booted()
    status.slot_begins(0, "job-a", "tasks.a", None)
    status.slot_begins(2, "job-c", "tasks.c", 5.0)
    seen = status.read()
    assert seen.phase is ChildPhase.BUSY and seen.slots == 4
    assert [job.job_id for job in seen.jobs] == ["job-a", "job-c"]
    assert seen.job_id == "job-a"  # the summary names the oldest
    status.slot_ends(0, failed=True)
    seen = status.read()
    assert [job.job_id for job in seen.jobs] == ["job-c"] and seen.phase is ChildPhase.BUSY
    status.slot_ends(2, failed=False)
    seen = status.read()
    assert seen.jobs == () and seen.phase is ChildPhase.IDLE
    assert (seen.jobs_done, seen.jobs_failed) == (2, 1)


def test_the_master_kills_when_any_one_job_of_many_is_past_its_hard_limit() -> None:
    from supervisor.master.health import is_overtime, overtime_job

    status = ChildStatus(slots=3)
    status.mark_booted()
    status.slot_begins(0, "job-a", "tasks.long", None)
    status.slot_begins(1, "job-b", "tasks.timed", 1.0)
    now = time.monotonic()
    assert not is_overtime(status.read(), now)
    late = now + 1.0 + 2.5  # past timeout + grace (max(2 s, 10 %))
    assert is_overtime(status.read(), late)
    assert overtime_job(status.read(), late) == ("job-b", "tasks.timed")
