"""Fake child targets for the master's integration tests (no Redis, no worker loop).

Each follows the child contract the master relies on: it writes its status
block, beats, and answers SIGTERM / SIGQUIT by leaving. Targets that must
misbehave only once use `first()`: a marker file in the working directory
(the test's tmp_path) that exactly one child manages to create.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

import setproctitle

from supervisor.errors import CHILD_EXIT_RECYCLE
from supervisor.fork.context import ChildContext

MB = 1024 * 1024


def first(name: str) -> bool:
    """True in exactly one child of the whole test (atomic create of a marker file)."""
    try:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _record_start(context: ChildContext) -> None:
    with open("starts.log", "a") as handle:
        handle.write(f"{os.getpid()} {context.slot} {context.generation}\n")


def _serve(context: ChildContext, *, jobs: bool = False, ignore_term: bool = False,
           hog: bool = False) -> None:
    status = context.status
    stop: list[int] = []

    def on_stop(signum: int, frame: Any) -> None:
        stop.append(signum)

    if not ignore_term:
        signal.signal(signal.SIGTERM, on_stop)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, on_stop)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the master passes USR1 on, as real ones take it
    setproctitle.setproctitle(f"fake worker {context.slot} [gen {context.generation}]")
    status.mark_booted()
    if hog:  # one job that leaves ~200 MB resident behind (written, so not calloc'd zeros)
        status.job_begins("job-hog", "tests.hog", None)
        kept = b"\x01" * (200 * MB)
        status.job_ends(failed=False)
        Path(f"hog-{os.getpid()}").write_text(str(len(kept)))
    share = context.config.max_jobs_per_child
    done = 0
    while not stop:
        status.beat()
        if jobs:
            status.job_begins(f"job-{time.monotonic()}", "tests.quick", None)
            status.job_ends(failed=False)
            done += 1
            if share and done >= share:  # the child contract: leave after its share
                os._exit(CHILD_EXIT_RECYCLE)
        time.sleep(0.05)
    Path(f"exit-{os.getpid()}").write_text(signal.Signals(stop[0]).name)
    os._exit(0)


def beating(context: ChildContext) -> None:
    _record_start(context)
    _serve(context)


def boot_failure(context: ChildContext) -> None:
    _record_start(context)
    os._exit(70)


def hang_once(context: ChildContext) -> None:
    """The first child hangs in C with every signal blocked: only SIGKILL ends it."""
    _record_start(context)
    if first("hang.marker"):
        context.status.mark_booted()
        Path(f"hung-{os.getpid()}").write_text("")
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        ctypes.CDLL(None).sleep(3600)
    _serve(context)


def overtime_once(context: ChildContext) -> None:
    """The first child starts a 0.5 s job and never finishes it (but keeps beating)."""
    _record_start(context)
    if first("overtime.marker"):
        status = context.status
        status.mark_booted()
        status.job_begins("job-overtime", "tests.slow", 0.5)
        Path(f"overtime-{os.getpid()}").write_text("")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            status.beat()
            time.sleep(0.05)
    _serve(context)


def memory_hog_once(context: ChildContext) -> None:
    """The first child's first job leaves it ~200 MB resident; then it keeps serving."""
    _record_start(context)
    _serve(context, hog=first("memory.marker"))


def counting_jobs(context: ChildContext) -> None:
    """Runs a job every 50 ms; leaves with CHILD_EXIT_RECYCLE after --max-jobs-per-child."""
    _record_start(context)
    _serve(context, jobs=True)


def stubborn(context: ChildContext) -> None:
    """Ignores SIGTERM: the master must SIGKILL it after the graceful timeout."""
    _record_start(context)
    _serve(context, ignore_term=True)
