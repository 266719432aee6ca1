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
