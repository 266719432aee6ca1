"""The master's decisions, with fakes at the OS boundary and a fake clock."""

from __future__ import annotations

import signal

import pytest
from master_fakes import Harness

from supervisor.config import Config
from supervisor.errors import (
    CHILD_EXIT_BOOT_FAILURE,
    CHILD_EXIT_CONFIG,
    CHILD_EXIT_RECYCLE,
    CHILD_EXIT_REDIS_REFUSED,
    EXIT_REDIS_REFUSED,
    EXIT_TASK_IMPORT,
    EXIT_USAGE,
    ConfigError,
)
from supervisor.fork.status import ChildPhase
from supervisor.master.arbiter import ABORT_GRACE, QUICK_STOP_TIMEOUT, State
from supervisor.master.process import ExitInfo


def started(workers: int = 2, **changes: object) -> Harness:
    config = Config(workers=workers, tasks=("tests.fake",), graceful_timeout=10.0,
                    heartbeat_timeout=5.0, **changes)  # type: ignore[arg-type]
    h = Harness(config)
    h.step()
    h.boot()
    h.step()
    return h


def test_spawns_one_child_per_slot_and_is_ready_only_when_all_booted() -> None:
    h = Harness()
    h.step()
    assert sorted(h.slots()) == [1, 2]
    assert all(child.generation == 1 for child in h.master.children.values())
    assert "READY=1" not in h.notifier.messages
    first = h.pids()[0]
    h.boot(first)
    h.step(0.2)
    assert "READY=1" not in h.notifier.messages
    h.boot()
    h.step(0.2)
    h.step(0.2)
    assert h.notifier.states().count("READY=1") == 1


def test_a_dead_child_is_reaped_and_replaced_in_its_slot() -> None:
    h = started()
    victim = h.slots()[2]
    block = h.status(victim)
    h.ops.exit(victim, sig=signal.SIGKILL)
    h.step(0.01)
    assert victim not in h.master.children
    assert block.closed
    h.step(0.2)  # the first crash of a slot waits backoff.base
    assert sorted(h.slots()) == [1, 2]
    assert h.slots()[2] != victim
    assert "killed by SIGKILL" in h.master.last_restart


def test_crash_loop_backs_off_exponentially_per_slot() -> None:
    h = started()
    untouched = h.slots()[2]
    waits = []
    for _ in range(5):
        pid = h.slots()[1]
        h.ops.exit(pid, code=1)
        h.step(0.0)
        assert 1 not in h.slots(), "respawned without waiting"
        spawned_at = None
        for _ in range(1000):
            h.step(0.05)
            if 1 in h.slots():
                spawned_at = h.now
                break
        assert spawned_at is not None
        waits.append(spawned_at)
    gaps = [b - a for a, b in zip(waits, waits[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    assert h.slots()[2] == untouched, "the other slot's child was left alone"


def test_backoff_resets_after_a_healthy_run() -> None:
    h = started()
    for _ in range(4):
        pid = h.slots()[1]
        h.ops.exit(pid, code=1)
        h.step()
        while 1 not in h.slots():
            h.step(0.05)
    assert h.master.backoff.failures(1) == 4
    pid = h.slots()[1]
    h.boot(pid)
    h.step(h.master.backoff.reset_after + 1)
    h.ops.exit(pid, code=1)
    h.step()
    assert h.master.backoff.failures(1) == 1


def test_boot_failure_stops_the_master_with_the_task_import_code() -> None:
    h = Harness()
    h.step()
    first, second = h.pids()
    h.ops.exit(first, code=CHILD_EXIT_BOOT_FAILURE)
    h.step(0.1)
    assert h.master.state is State.QUITTING
    assert second in h.ops.sent(signal.SIGQUIT)
    assert "STOPPING=1" in h.notifier.states()
    spawned = h.ops.next_pid
    h.ops.exit(second, code=CHILD_EXIT_BOOT_FAILURE)
    h.step(0.1)
    assert h.ops.next_pid == spawned, "no restart after a boot failure"
    assert h.master.exit_code == EXIT_TASK_IMPORT


def test_exit_70_after_booting_is_a_crash_not_a_boot_failure() -> None:
    h = started()
    pid = h.slots()[1]
    h.ops.exit(pid, code=CHILD_EXIT_BOOT_FAILURE)
    h.step(0.1)
    assert h.master.state is State.RUNNING
    h.step(1.0)
    assert 1 in h.slots()


def test_hung_child_gets_sigabrt_then_sigkill_and_is_replaced() -> None:
    h = started()
    hung = h.slots()[1]
    h.step(4.0)
    h.status(h.slots()[2]).heartbeat = h.now
    assert h.ops.sent(signal.SIGABRT) == []
    h.step(1.5)  # 5.5 s without a beat > heartbeat_timeout 5 s
    assert h.ops.sent(signal.SIGABRT) == [hung]
    assert h.slots()[2] not in h.ops.sent(signal.SIGABRT)
    h.step(ABORT_GRACE / 2)
    assert hung not in h.ops.sent(signal.SIGKILL)
    h.step(ABORT_GRACE)
    assert h.ops.sent(signal.SIGKILL) == [hung]
    h.ops.exit(hung, sig=signal.SIGKILL)
    h.step(0.2)
    h.step(1.0)
    assert h.slots()[1] != hung


def test_a_long_job_that_keeps_beating_is_not_killed() -> None:
    h = started()
    pid = h.slots()[1]
    status = h.status(pid)
    status.phase, status.job_started, status.job_deadline = ChildPhase.BUSY, h.now, 0.0
    for _ in range(100):
        h.beat_all()
        h.step(1.0)
    assert h.ops.signals == []


def test_job_past_its_timeout_plus_grace_is_killed() -> None:
    h = started()
    pid = h.slots()[1]
    status = h.status(pid)
    status.phase, status.job_started, status.job_deadline = ChildPhase.BUSY, h.now, h.now + 10
    for _ in range(119):  # grace is max(2 s, 10 %) = 2 s
        h.beat_all()
        h.step(0.1)
    assert h.ops.signals == []
    h.beat_all()
    h.step(0.2)
    assert h.ops.signals == [(pid, signal.SIGKILL)]


def test_child_over_memory_is_recycled_gracefully_and_replaced_at_once() -> None:
    h = started(max_memory_per_child=100)
    pid = h.slots()[2]
    h.status(pid).jobs_done = 1
    h.rss[pid] = 150 * 1024 * 1024
    h.step(0.2)
    assert h.ops.signals == [(pid, signal.SIGTERM)]
    assert h.slots()[2] != pid, "replacement spawned while the old one finishes"
    h.beat_all()
    h.step(5.0)
    assert (pid, signal.SIGKILL) not in h.ops.signals
    h.beat_all()
    h.step(5.1)  # graceful_timeout 10 s is over
    assert (pid, signal.SIGKILL) in h.ops.signals


def test_a_child_leaves_after_its_max_jobs_share_and_the_master_only_reads_the_exit() -> None:
    h = started(max_jobs_per_child=5)
    pid = h.slots()[1]
    h.status(pid).jobs_done = 500
    h.step(0.2)
    assert h.ops.signals == [], "the master never stops a child for its job count"
    h.ops.exit(pid, code=CHILD_EXIT_RECYCLE)
    h.step(0.2)
    assert h.master.backoff.failures(1) == 0, "a recycle is not a crash"
    assert h.slots()[1] != pid, "replaced at once"
    assert h.master.restarts["max_jobs"] == 1


def test_term_stops_gracefully_then_kills_stragglers_and_exits_zero() -> None:
    h = started()
    a, b = h.pids()
    h.signal(signal.SIGTERM)
    assert sorted(h.ops.sent(signal.SIGTERM)) == [a, b]
    assert "STOPPING=1" in h.notifier.states()
    h.ops.exit(a, code=0)
    h.step(1.0)
    assert a not in h.master.children and len(h.master.children) == 1, "no respawn while stopping"
    h.beat_all()
    h.step(9.5)
    assert h.ops.sent(signal.SIGKILL) == [b]
    assert h.master.exit_code is None
    h.ops.exit(b, sig=signal.SIGKILL)
    h.step(0.1)
    assert h.master.exit_code == 0


def test_second_term_turns_into_a_quick_stop() -> None:
    h = started()
    h.signal(signal.SIGTERM)
    h.signal(signal.SIGTERM)
    assert sorted(h.ops.sent(signal.SIGQUIT)) == h.pids(serving=False)
    assert h.master.state is State.QUITTING


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_quick_stop_quits_children_then_kills(sig: signal.Signals) -> None:
    h = started()
    pids = h.pids()
    h.signal(sig)
    assert sorted(h.ops.sent(signal.SIGQUIT)) == pids
    h.beat_all()
    h.step(QUICK_STOP_TIMEOUT + 0.1)
    assert sorted(h.ops.sent(signal.SIGKILL)) == pids
    for pid in pids:
        h.ops.exit(pid, sig=signal.SIGKILL)
    h.step(0.1)
    assert h.master.exit_code == 0


def test_hup_starts_a_new_generation_and_retires_the_old_once_it_booted() -> None:
    loads = []

    def load() -> Config:
        loads.append(1)
        return Config(workers=3, tasks=("tests.fake",), heartbeat_timeout=5.0)

    h = Harness(Config(workers=2, tasks=("tests.fake",), heartbeat_timeout=5.0), load=load)
    h.step()
    h.boot()
    h.step()
    old = h.pids(generation=1)
    h.signal(signal.SIGHUP)
    assert loads == [1]
    assert "RELOADING=1" in h.notifier.states()
    new = h.pids(generation=2)
    assert len(new) == 3
    assert h.ops.sent(signal.SIGTERM) == [], "old generation serves until the new one booted"
    h.boot(*new[:2])
    h.step(0.2)
    assert h.ops.sent(signal.SIGTERM) == []
    h.boot(*new)
    h.step(0.2)
    assert sorted(h.ops.sent(signal.SIGTERM)) == old
    assert h.notifier.states()[-1] == "READY=1"
    assert h.master.workers == 3


def reloading() -> tuple[Harness, list[int]]:
    """A pool of two serving, just sent HUP; and the pids of its first generation."""
    h = Harness(load=lambda: Config(workers=2, tasks=("tests.fake",), heartbeat_timeout=5.0))
    h.step()
    h.boot()
    h.step()
    old = h.pids(generation=1)
    h.signal(signal.SIGHUP)
    return h, old


def test_reload_whose_new_generation_cannot_boot_keeps_the_old_one() -> None:
    h, old = reloading()
    new = h.pids(generation=2)
    h.ops.exit(new[0], code=CHILD_EXIT_BOOT_FAILURE)
    h.step(0.2)
    assert h.master.state is State.RUNNING and h.master.exit_code is None
    assert h.master.generation == 1
    assert h.ops.sent(signal.SIGTERM) == [new[1]]
    assert h.pids() == old
    h.step(1.0)
    assert h.pids() == old, "no spawn for the failed generation"


@pytest.mark.parametrize("code", [CHILD_EXIT_BOOT_FAILURE, CHILD_EXIT_REDIS_REFUSED,
                                  CHILD_EXIT_CONFIG])
def test_reload_whose_new_children_all_fail_in_one_tick_keeps_the_old_generation(
        code: int) -> None:
    h, old = reloading()
    for pid in h.pids(generation=2):  # every new child fails at once: reaped together
        h.ops.exit(pid, code=code)
    h.step(0.2)
    assert h.master.state is State.RUNNING and h.master.exit_code is None
    assert h.master.generation == 1 and h.pids() == old
    assert h.master.status_line().startswith("last reload failed: a new worker ")


@pytest.mark.parametrize(("code", "exit_code"), [(CHILD_EXIT_REDIS_REFUSED, EXIT_REDIS_REFUSED),
                                                 (CHILD_EXIT_CONFIG, EXIT_USAGE)])
def test_a_child_refused_at_start_stops_the_master_with_its_code(code: int,
                                                                 exit_code: int) -> None:
    h = Harness()
    h.step()
    h.ops.exit(h.pids()[0], code=code)
    h.step(0.2)
    assert h.master.state is State.QUITTING
    for pid in h.pids(serving=False):
        h.ops.exit(pid, code=code)
    h.step(0.2)
    assert h.master.exit_code == exit_code


def test_reload_with_invalid_config_changes_nothing() -> None:
    def load() -> Config:
        raise ConfigError("invalid value 'x' for --workers")

    h = Harness(load=load)
    h.step()
    h.signal(signal.SIGHUP)
    assert h.master.generation == 1 and h.master.reload is None


def test_ttin_and_ttou_change_the_count_never_below_one() -> None:
    h = started()
    h.signal(signal.SIGTTIN)
    assert sorted(h.slots()) == [1, 2, 3]
    third = h.slots()[3]
    h.signal(signal.SIGTTOU)
    assert h.ops.sent(signal.SIGTERM) == [third]
    assert sorted(h.slots()) == [1, 2]
    for _ in range(5):
        h.signal(signal.SIGTTOU)
    assert h.master.workers == 1
    assert sorted(h.slots()) == [1]


def test_usr1_is_passed_on_and_chld_only_wakes() -> None:
    h = started()
    h.signal(signal.SIGCHLD)
    assert h.ops.signals == []
    h.signal(signal.SIGUSR1)  # children reopen their own log files
    assert sorted(h.ops.sent(signal.SIGUSR1)) == sorted(h.slots().values())


def test_status_counts_jobs_of_reaped_children() -> None:
    h = started()
    pid = h.slots()[1]
    h.status(pid).jobs_done = 7
    h.status(h.slots()[2]).jobs_done = 3
    h.ops.exit(pid, code=1)
    h.step(1.0)  # STATUS= goes out at most once a second
    status_lines = [m for m in h.notifier.messages if m.startswith("STATUS=")]
    assert "10 jobs done" in status_lines[-1]
    assert "last restart: worker 1" in status_lines[-1]


def test_watchdog_pings_at_the_interval() -> None:
    h = Harness(watchdog=1.0)
    for _ in range(20):
        h.step(0.25)
    assert 4 <= h.notifier.messages.count("WATCHDOG=1") <= 6


def test_signal_table_covers_the_contract() -> None:
    h = Harness()
    expected = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN,
                signal.SIGTTOU, signal.SIGUSR1, signal.SIGCHLD}
    assert set(h.master.signal_table) == expected


def test_exit_info_describes_codes_and_signals() -> None:
    assert ExitInfo(code=3, signal=None).describe() == "exit code 3"
    assert ExitInfo(code=None, signal=9).describe() == "killed by SIGKILL"
