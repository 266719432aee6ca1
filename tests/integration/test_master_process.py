"""process.py on real forks: exit codes, signal state in the child, PDEATHSIG, kill/wait."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from supervisor.master.process import ExitInfo, RealProcessOps

PR_GET_PDEATHSIG = 2
ops = RealProcessOps()


def reap(pid: int, timeout: float = 10.0) -> ExitInfo:
    return wait_until(lambda: ops.wait(pid), timeout=timeout, what=f"child {pid} ended")


def in_child(check: Callable[[], bool]) -> ExitInfo:
    """Run `check` in a forked child; the child exits 0 if it returned True, else 1."""

    def target() -> None:
        sys.exit(0 if check() else 1)

    return reap(ops.spawn(target))


@pytest.fixture
def term_handler() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_exit_codes_of_the_target() -> None:
    assert reap(ops.spawn(lambda: None)) == ExitInfo(code=0, signal=None)
    assert reap(ops.spawn(lambda: sys.exit(3))) == ExitInfo(code=3, signal=None)
    assert reap(ops.spawn(lambda: os._exit(70))) == ExitInfo(code=70, signal=None)


def test_a_target_that_raises_exits_1() -> None:
    def boom() -> None:
        raise RuntimeError("bug in the child")

    assert reap(ops.spawn(boom)) == ExitInfo(code=1, signal=None)


def test_child_starts_with_default_handlers(term_handler: None) -> None:
    assert in_child(lambda: signal.getsignal(signal.SIGTERM) == signal.SIG_DFL).code == 0
    assert in_child(lambda: signal.getsignal(signal.SIGINT) is signal.default_int_handler).code == 0
    assert in_child(lambda: signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN).code == 0


def test_parent_handlers_and_mask_are_untouched(term_handler: None) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    reap(ops.spawn(lambda: None))
    assert signal.getsignal(signal.SIGTERM) is handler
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask


def test_child_signal_mask_is_restored() -> None:
    assert in_child(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()).code == 0


def test_child_asked_for_sigkill_on_parent_death() -> None:
    def pdeathsig() -> bool:
        value = ctypes.c_int()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
        return value.value == signal.SIGKILL

    assert in_child(pdeathsig).code == 0


def test_child_random_is_reseeded() -> None:
    read, write = os.pipe()
    random.seed(42)
    expected = random.random()
    random.seed(42)

    def target() -> None:
        os.write(write, repr(random.random()).encode())

    reap(ops.spawn(target))
    os.close(write)
    assert float(os.read(read, 100)) != expected
    os.close(read)


def test_kill_and_wait() -> None:
    pid = ops.spawn(lambda: signal.pause())
    assert ops.wait(pid) is None
    assert ops.kill(pid, signal.SIGKILL)
    assert reap(pid) == ExitInfo(code=None, signal=signal.SIGKILL)
    assert reap(pid).describe() == "exit status unknown"  # already reaped: status lost
    assert not ops.kill(pid, signal.SIGTERM)


def test_a_stop_signal_after_the_loop_ended_does_not_kill_the_master(tmp_path: Path) -> None:
    """A second TERM (an operator's impatience) landing while the master winds down, after
    its loop and its children are done: the exit code stays the loop's, not -SIGTERM."""
    import subprocess
    import textwrap

    script = textwrap.dedent("""
        import os, signal, sys
        from supervisor.config import Config
        from supervisor.master import arbiter, reload_state, serve
        arbiter.Master.run = lambda self, clock=None: 0   # the loop ended cleanly
        def late_term(self):                              # ... and TERM comes now
            os.kill(os.getpid(), signal.SIGTERM)
        reload_state.ReloadReport.remove = late_term
        sys.exit(serve.run_master(lambda: Config(node_name="late-term", tasks=("x",)),
                                  target=lambda context: None))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
