"""Pure health verdicts on hand-made snapshots and a fake clock; the psutil probe on us."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from supervisor.fork.status import ChildPhase, ChildSnapshot
from supervisor.master import health
from supervisor.master.health import Limits, Probe, Verdict

LIMITS = Limits(heartbeat_timeout=10.0, boot_timeout=60.0, max_memory_mb=100)
OK_PROBE = Probe(alive=True, rss=50 * health.MB)


def snap(**changes: object) -> ChildSnapshot:
    values: dict[str, object] = dict(
        heartbeat=1000.0, phase=ChildPhase.IDLE, booted=True, job_started=0.0, job_deadline=0.0,
        jobs_done=0, jobs_failed=0, job_id="", task="",
    )
    values.update(changes)
    return ChildSnapshot(**values)  # type: ignore[arg-type]


def test_fresh_heartbeat_is_ok() -> None:
    assert health.judge(snap(), OK_PROBE, 1009.0, LIMITS) is Verdict.OK


def test_stale_heartbeat_is_hung() -> None:
    assert health.judge(snap(), OK_PROBE, 1010.5, LIMITS) is Verdict.HUNG


def test_booting_child_gets_the_longer_boot_timeout() -> None:
    booting = snap(booted=False, phase=ChildPhase.BOOTING)
    assert health.judge(booting, OK_PROBE, 1030.0, LIMITS) is Verdict.OK
    assert health.judge(booting, OK_PROBE, 1061.0, LIMITS) is Verdict.HUNG


def test_boot_timeout_is_never_shorter_than_the_heartbeat_timeout() -> None:
    assert Limits.from_config(100.0, 0).boot_timeout >= 100.0
    assert Limits.from_config(5.0, 0).boot_timeout == 60.0


def test_job_without_timeout_is_never_overtime() -> None:
    busy = snap(phase=ChildPhase.BUSY, job_started=0.0, job_deadline=0.0, heartbeat=1e6)
    assert health.judge(busy, OK_PROBE, 1e6 + 1, LIMITS) is Verdict.OK


@pytest.mark.parametrize(("timeout", "grace"), [(1.0, 2.0), (10.0, 2.0), (100.0, 10.0)])
def test_overtime_after_deadline_plus_grace(timeout: float, grace: float) -> None:
    busy = snap(phase=ChildPhase.BUSY, job_started=1000.0, job_deadline=1000.0 + timeout)
    deadline = 1000.0 + timeout + grace
    assert health.hard_limit_grace(timeout) == grace
    assert not health.is_overtime(busy, deadline - 0.01)
    assert health.is_overtime(busy, deadline + 0.01)


def test_idle_child_with_stale_deadline_fields_is_not_overtime() -> None:
    idle = snap(phase=ChildPhase.IDLE, job_started=1.0, job_deadline=2.0)
    assert not health.is_overtime(idle, 1000.0)


def test_memory_limit_uses_current_rss_and_zero_means_off() -> None:
    big = Probe(alive=True, rss=101 * health.MB)
    worked = snap(jobs_done=1)
    assert health.judge(worked, big, 1001.0, LIMITS) is Verdict.OVER_MEMORY
    assert health.judge(worked, big, 1001.0, Limits(10.0, 60.0, max_memory_mb=0)) is Verdict.OK


def test_memory_recycle_only_once_a_job_ran_or_runs() -> None:
    big = Probe(alive=True, rss=101 * health.MB)
    booting = snap(booted=False, phase=ChildPhase.BOOTING)
    assert health.judge(booting, big, 1001.0, LIMITS) is Verdict.OK
    assert health.judge(snap(), big, 1001.0, LIMITS) is Verdict.OK, "idle at its baseline"
    busy = snap(phase=ChildPhase.BUSY, job_started=1000.0)
    assert health.judge(busy, big, 1001.0, LIMITS) is Verdict.OVER_MEMORY


def test_the_job_count_is_no_verdict_of_the_master() -> None:
    # A child leaves by itself after its --max-jobs-per-child share (exit 72).
    assert health.judge(snap(jobs_done=10**6), OK_PROBE, 1001.0, LIMITS) is Verdict.OK


def test_most_urgent_verdict_wins() -> None:
    everything = snap(phase=ChildPhase.BUSY, job_started=1.0, job_deadline=2.0, jobs_done=99)
    big = Probe(alive=True, rss=500 * health.MB)
    assert health.judge(everything, big, 2000.0, LIMITS) is Verdict.HUNG
    assert health.judge(everything, big, 1005.0, LIMITS) is Verdict.OVERTIME
    assert health.judge(snap(jobs_done=99), big, 1005.0, LIMITS) is Verdict.OVER_MEMORY
    assert health.judge(snap(jobs_done=99), OK_PROBE, 1005.0, LIMITS) is Verdict.OK


def test_recycling_verdicts() -> None:
    assert Verdict.OVER_MEMORY.recycles
    assert not Verdict.HUNG.recycles and not Verdict.OVERTIME.recycles


def test_probe_sees_a_live_process_and_a_dead_one() -> None:
    me = health.probe(os.getpid())
    assert me.alive and me.rss > 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert health.probe(child.pid) == health.DEAD


def test_probe_calls_a_zombie_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        from helpers import wait_until

        wait_until(lambda: health.probe(child.pid) == health.DEAD, timeout=10, what="zombie")
    finally:
        child.wait()
