"""The only place that forks, waits for and kills processes.

The master's policy talks to the OS through `ProcessOps`, so its decisions can
be unit-tested with a fake; `RealProcessOps` is the real thing.

Forking rules (DESIGN section 3):

- every signal is blocked across the fork, so no handler of the master runs
  in the child between `fork()` and the child resetting its handlers;
- the child resets the handlers to their defaults, drops the master's
  wakeup fd, reseeds `random`, asks the kernel for SIGKILL when its parent
  dies (PR_SET_PDEATHSIG) and then checks that the parent is still the
  master (it may have died before the prctl took effect);
- the child leaves through `os._exit`, never through the master's cleanup
  code (atexit handlers, pidfile removal, finally blocks up the stack).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from supervisor.errors import CHILD_EXIT_ORPHANED

PR_SET_PDEATHSIG = 1
# A child whose master died between fork() and prctl() leaves at once with
# CHILD_EXIT_ORPHANED (errors.py): nobody is left to supervise it.
# A child target that raised instead of leaving through os._exit.
CHILD_EXIT_CRASHED = 1


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a child ended: its exit code or the signal that killed it.

    Both are None when the status was lost (someone else reaped the child).
    """

    code: int | None
    signal: int | None

    @classmethod
    def from_status(cls, status: int) -> ExitInfo:
        value = os.waitstatus_to_exitcode(status)
        return cls(code=None, signal=-value) if value < 0 else cls(code=value, signal=None)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        if self.code is None:
            return "exit status unknown"
        return f"exit code {self.code}"


class ProcessOps(Protocol):
    """What the master needs from the OS to manage its children."""

    def spawn(self, target: Callable[[], object]) -> int:
        """Fork a child that runs `target` and exits; return its pid."""
        ...

    def wait(self, pid: int) -> ExitInfo | None:
        """Reap `pid` if it has ended (never blocks); None while it runs."""
        ...

    def kill(self, pid: int, sig: int) -> bool:
        """Send `sig` to `pid`; False if the process is already gone."""
        ...


def _set_pdeathsig(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent thread dies."""
    try:
        # The process's own symbols, libc's among them. (ctypes.util.find_library
        # would run `ldconfig -p` in every new child: 10-20 ms of its boot.)
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux: the getppid() check still applies
        return False


def _reset_signal_handlers() -> None:
    """Give the child the dispositions a fresh Python process starts with."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if sig == signal.SIGINT:
            default: signal.Handlers | Callable[..., object] = signal.default_int_handler
        elif sig == signal.SIGPIPE:
            default = signal.SIG_IGN  # Python ignores SIGPIPE: writes raise BrokenPipeError
        else:
            default = signal.SIG_DFL
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if signal.getsignal(sig) is not default:
                signal.signal(sig, default)


def _run_child(target: Callable[[], object], master_pid: int, saved_mask: set[int]) -> None:
    """Body of the forked child; never returns."""
    code = CHILD_EXIT_CRASHED
    try:
        _reset_signal_handlers()
        random.seed()
        _set_pdeathsig(signal.SIGKILL)
        if os.getppid() != master_pid:  # the master died before prctl() took effect
            os._exit(CHILD_EXIT_ORPHANED)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        target()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must leave through os._exit below
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class RealProcessOps:
    """`ProcessOps` on fork(), waitpid() and kill()."""

    def spawn(self, target: Callable[[], object]) -> int:
        master_pid = os.getpid()
        saved = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                _run_child(target, master_pid, saved)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        return pid

    def wait(self, pid: int) -> ExitInfo | None:
        # waitpid on the exact pid, never -1: the master may share its process
        # with others' children (tests run it inside pytest next to redis-server).
        try:
            found, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already reaped by someone else: report it as gone
            return ExitInfo(code=None, signal=None)
        if found == 0:
            return None
        return ExitInfo.from_status(status)

    def kill(self, pid: int, sig: int) -> bool:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
