"""The entry point of a forked child: boot, consume, leave through os._exit."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from typing import NoReturn

from supervisor.api.middleware import install
from supervisor.api.task_modules import import_task_modules
from supervisor.core.middleware import WorkerInfo
from supervisor.errors import (
    CHILD_EXIT_BOOT_FAILURE,
    CHILD_EXIT_CONFIG,
    CHILD_EXIT_REDIS_REFUSED,
    ConfigError,
    RedisRefused,
    TaskImportError,
)
from supervisor.fork.context import ChildContext
from supervisor.fork.status import NOTE_LIMIT, ChildStatus
from supervisor.worker import metrics
from supervisor.worker.boot import await_redis, schedule_problems
from supervisor.worker.concurrent import make_worker
from supervisor.worker.loop import BEAT_EVERY, Title

log = logging.getLogger("supervisor.worker")


def _proctitle(slot: int, generation: int) -> Title:
    try:
        from setproctitle import setproctitle
    except ImportError:  # pragma: no cover - a dependency, but never fatal
        return lambda state, task="": None

    def title(state: str, task: str = "") -> None:
        setproctitle(f"supervisor: worker {slot} [gen {generation}] {state} {task}".rstrip())

    return title


def _leave(status: ChildStatus, code: int, reason: str) -> NoReturn:
    """Exit before booting with a code that tells the master a restart cannot help.

    The master says why, once for the pool (from the status block); the child
    logs only what does not fit there.
    """
    status.note(reason)
    if len(reason.encode()) > NOTE_LIMIT:
        log.error("%s", reason)
    sys.stderr.flush()
    os._exit(code)


def child_main(context: ChildContext) -> NoReturn:
    """Entry point of a forked child: boot, consume, leave through os._exit."""
    code = 1
    config, status = context.config, context.status
    try:
        faulthandler.enable()  # SIGABRT from the master dumps every thread's traceback
        title = _proctitle(context.slot, context.generation)
        title("booting")
        if context.metrics_dir is not None:  # before the task code, which may count too
            metrics.use_directory(context.metrics_dir)
        # Beat while importing too, so an import that hangs in C code is
        # caught by the heartbeat timeout rather than the boot timeout.
        signal.signal(signal.SIGALRM, lambda signum, frame: status.beat())
        signal.setitimer(signal.ITIMER_REAL, BEAT_EVERY, BEAT_EVERY)
        try:
            import_task_modules(config.tasks)
        except TaskImportError as exc:
            _leave(status, CHILD_EXIT_BOOT_FAILURE, str(exc))
        problems = schedule_problems(config)
        if problems:
            _leave(status, CHILD_EXIT_CONFIG, "; ".join(problems))
        try:  # after the task imports: a task module may register middleware in code
            hooks = install(config)
        except ConfigError as exc:
            _leave(status, CHILD_EXIT_CONFIG, str(exc))
        title("waiting for Redis")
        try:
            if not await_redis(config, status, pool_served=context.pool_served):
                os._exit(0)  # stopped while waiting for Redis: nothing taken, nothing to hand back
        except RedisRefused as exc:
            _leave(status, CHILD_EXIT_REDIS_REFUSED, str(exc))
        worker = make_worker(config, context=context, title=title)
        worker.install_signals()
        me = WorkerInfo(worker.consumer, context.slot, context.generation, os.getpid(),
                        tuple(config.queues))
        hooks.run("after_child_boot", me)  # per-process resources, opened after the fork
        status.mark_booted()
        title("idle")
        code = worker.run()
        hooks.run("before_child_exit", me)
    except Exception:
        log.exception("worker %d crashed", context.slot)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
