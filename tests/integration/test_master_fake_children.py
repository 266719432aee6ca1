"""The real master, as a subprocess, forking fake children (no Redis, no worker loop).

Synchronises on the master's sd_notify datagrams and on psutil's view of its
children; never on sleeps.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import wait_until
from master_harness import MasterProcess

from supervisor.errors import EXIT_TASK_IMPORT

Start = Callable[..., MasterProcess]


@pytest.fixture
def start(tmp_path: Path, clean_env: None) -> Iterator[Start]:
    started: list[MasterProcess] = []

    def _start(target: str, **options: object) -> MasterProcess:
        options.setdefault("graceful_timeout", 5)
        options.setdefault("tasks", "tests.fake")
        master = MasterProcess.fake(target, tmp_path, **options)
        started.append(master)
        return master

    yield _start
    for master in started:
        master.stop()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_start_ready_titles_and_replace_a_killed_child(start: Start) -> None:
    master = start("beating", workers=3)
    master.notify.wait_for("READY=1")
    pids = master.wait_children(3)
    titles = sorted(psutil.Process(pid).cmdline()[0] for pid in pids)
    assert titles == [f"fake worker {n} [gen 1]" for n in (1, 2, 3)]
    assert "supervisor: master" in " ".join(psutil.Process(master.pid).cmdline())

    victim = min(pids)
    psutil.Process(victim).kill()
    wait_until(lambda: len(master.child_pids() - pids) == 1 and len(master.child_pids()) == 3,
               timeout=10, what="replacement")
    assert victim not in master.child_pids()
    assert "killed by SIGKILL" in master.log()


def test_sigkill_of_the_master_takes_the_children_with_it(start: Start) -> None:
    master = start("beating", workers=3)
    master.notify.wait_for("READY=1")
    pids = master.wait_children(3)
    master.send(signal.SIGKILL)
    master.wait_exit()
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=5, what="children died")


def test_term_is_a_graceful_stop_with_exit_zero(start: Start, tmp_path: Path) -> None:
    master = start("beating", workers=2)
    master.notify.wait_for("READY=1")
    pids = master.wait_children(2)
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    assert master.notify.count("STOPPING=1") == 1
    assert all(gone(pid) for pid in pids)
    for pid in pids:  # each child was asked with SIGTERM and left on its own
        assert (tmp_path / f"exit-{pid}").read_text() == "SIGTERM"


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT])
def test_quit_and_int_are_quick_stops(start: Start, tmp_path: Path, sig: signal.Signals) -> None:
    master = start("beating", workers=2)
    master.notify.wait_for("READY=1")
    pids = master.wait_children(2)
    master.send(sig)
    assert master.wait_exit() == 0
    for pid in pids:
        assert (tmp_path / f"exit-{pid}").read_text() == "SIGQUIT"


def test_child_ignoring_term_is_killed_after_the_graceful_timeout(start: Start) -> None:
    master = start("stubborn", workers=1, graceful_timeout=1)
    master.notify.wait_for("READY=1")
    master.wait_children(1)
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    assert "did not exit in time: SIGKILL" in master.log()


def test_second_term_turns_the_stop_quick(start: Start, tmp_path: Path) -> None:
    master = start("stubborn", workers=1, graceful_timeout=60)
    master.notify.wait_for("READY=1")
    (pid,) = master.wait_children(1)
    master.send(signal.SIGTERM)
    master.notify.wait_for("STOPPING=1")
    master.send(signal.SIGTERM)
    assert master.wait_exit(timeout=20) == 0
    assert (tmp_path / f"exit-{pid}").read_text() == "SIGQUIT"


def test_ttin_ttou_change_the_count_never_below_one(start: Start) -> None:
    master = start("beating", workers=2)
    master.notify.wait_for("READY=1")
    master.wait_children(2)
    master.send(signal.SIGTTIN)
    master.wait_children(3)
    # One at a time: the kernel merges a signal sent again while still pending.
    for count in (2, 1):
        master.send(signal.SIGTTOU)
        master.wait_children(count)
    master.send(signal.SIGTTOU)
    wait_until(lambda: "SIGTTOU ignored" in master.log(), timeout=10)
    assert len(master.child_pids()) == 1
    master.send(signal.SIGTTIN)
    master.wait_children(2)


def test_hup_starts_a_new_generation_and_never_drops_to_zero(start: Start) -> None:
    master = start("beating", workers=2)
    master.notify.wait_for("READY=1")
    old = master.wait_children(2)
    master.send(signal.SIGHUP)
    seen: list[int] = []

    def reloaded() -> bool:
        pids = master.child_pids()
        seen.append(len(pids))
        return master.notify.count("READY=1") >= 2 and len(pids) == 2 and not pids & old

    wait_until(reloaded, timeout=20, what="new generation alone")
    assert min(seen) >= 1
    states = master.notify.states()
    assert states.index("RELOADING=1") < len(states) - 1 - states[::-1].index("READY=1")
    assert {gen for _, _, gen in master.starts()} == {1, 2}
    titles = sorted(psutil.Process(pid).cmdline()[0] for pid in master.child_pids())
    assert titles == ["fake worker 1 [gen 2]", "fake worker 2 [gen 2]"]


def test_hup_rereads_the_environment_file_config(start: Start, tmp_path: Path) -> None:
    config = tmp_path / "supervisor.toml"
    config.write_text("workers = 1\n")
    master = start("beating", config_file=str(config))
    master.notify.wait_for("READY=1")
    master.wait_children(1)
    config.write_text("workers = 3\n")
    master.send(signal.SIGHUP)
    master.notify.wait_for("READY=1", count=2)
    master.wait_children(3)


def test_reload_with_a_broken_config_keeps_running(start: Start, tmp_path: Path) -> None:
    config = tmp_path / "supervisor.toml"
    config.write_text("workers = 2\n")
    master = start("beating", config_file=str(config))
    master.notify.wait_for("READY=1")
    pids = master.wait_children(2)
    config.write_text("workers = 0\n")
    master.send(signal.SIGHUP)
    wait_until(lambda: "reload refused" in master.log(), timeout=10)
    assert master.child_pids() == pids
    assert "--workers" in master.log()


def test_boot_failure_exits_with_the_task_import_code_without_a_storm(start: Start) -> None:
    master = start("boot_failure", workers=3)
    assert master.wait_exit(timeout=20) == EXIT_TASK_IMPORT
    assert len(master.starts()) <= 3, "no child was restarted"
    assert "could not import the task modules" in master.log()
    assert master.notify.count("READY=1") == 0


def test_hung_child_is_aborted_killed_and_replaced(start: Start, tmp_path: Path) -> None:
    master = start("hang_once", workers=2, heartbeat_timeout=1)
    master.notify.wait_for("READY=1")
    wait_until(lambda: list(tmp_path.glob("hung-*")), timeout=10)
    hung = int(next(tmp_path.glob("hung-*")).name.split("-")[1])
    wait_until(lambda: gone(hung), timeout=20, what="hung child killed")
    master.wait_children(2)
    log = master.log()
    assert "is hung" in log and "SIGABRT" in log
    assert f"(pid {hung}) died: killed by SIGKILL (hung)" in log


def test_job_past_its_hard_limit_is_killed(start: Start, tmp_path: Path) -> None:
    master = start("overtime_once", workers=1)
    master.notify.wait_for("READY=1")
    wait_until(lambda: list(tmp_path.glob("overtime-*")), timeout=10)
    pid = int(next(tmp_path.glob("overtime-*")).name.split("-")[1])
    wait_until(lambda: gone(pid), timeout=20, what="overtime child killed")
    wait_until(lambda: len(master.child_pids() - {pid}) == 1, timeout=10, what="replacement")
    assert "job-overtime (tests.slow) ran past its timeout: SIGKILL" in master.log()


def test_child_over_the_memory_limit_is_recycled(start: Start, tmp_path: Path) -> None:
    master = start("memory_hog_once", workers=2, max_memory_per_child=100)
    master.notify.wait_for("READY=1")
    wait_until(lambda: list(tmp_path.glob("hog-*")), timeout=10)
    pid = int(next(tmp_path.glob("hog-*")).name.split("-")[1])
    wait_until(lambda: gone(pid), timeout=20, what="hog recycled")
    assert (tmp_path / f"exit-{pid}").read_text() == "SIGTERM", "recycled gracefully"
    master.wait_children(2)
    assert "recycled: over memory" in master.log()


def test_max_jobs_per_child_recycles(start: Start) -> None:
    master = start("counting_jobs", workers=1, max_jobs_per_child=20)
    master.notify.wait_for("READY=1")
    wait_until(lambda: len(master.starts()) >= 3, timeout=20, what="two recycles")
    assert "recycled: ran its --max-jobs-per-child share" in master.log()
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0


def test_pidfile_is_written_and_removed(start: Start, tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "supervisor.pid"
    master = start("beating", workers=1, pidfile=str(pidfile))
    master.notify.wait_for("READY=1")
    assert pidfile.read_text().strip() == str(master.pid)
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    assert not pidfile.exists()


def test_usr1_reopens_the_log_file(start: Start, tmp_path: Path) -> None:
    master = start("beating", workers=1)
    master.notify.wait_for("READY=1")
    master.send(signal.SIGUSR1)
    wait_until(lambda: "SIGUSR1: reopened" in master.log(), timeout=10)
    assert len(master.child_pids()) == 1
