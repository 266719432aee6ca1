"""Hooks for users' code (middleware): the typed interface and its dispatch.

A middleware is an object with any of the hook points below (subclass
`Middleware` and override what you need). `Hooks` is the frozen set of them
a process uses: for each hook point it keeps only the methods some
middleware really defines, so a point nobody hooks is an empty tuple, and
the call sites test that before building anything (no cost without hooks).

Rules every call follows (they are the contract users read in the README):

- Order: the "before" points (before_enqueue, after_child_boot,
  before_attempt, on_reload) run in registration order; the "after" points
  (after_attempt, on_retry, on_dead_letter, on_cancel, before_child_exit)
  in reverse, so the first middleware wraps all the others (a tracer that
  opens a span first closes it last).
- A hook that raises is logged with its name and the job's fields, and the
  next hook runs: a hook never loses a job nor kills a worker.
- Hooks may be called from several threads at once (several jobs in flight
  in one child): the `Hooks` object is immutable, and what belongs to one
  attempt travels in its `AttemptInfo` (its `state` dict is the place for a
  middleware's own per-attempt values, e.g. a span), never on the middleware.

Pure: no Redis, no configuration; `load` imports a `package.module:Class`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("supervisor.hooks")

# Outcomes of an attempt, as after_attempt sees them in `AttemptInfo.outcome`.
SUCCEEDED = "succeeded"
RETRY = "retry"  # failed; another attempt is scheduled
FAILED = "failed"  # failed for good: dead-lettered
INTERRUPTED = "interrupted"  # cut short by a quick stop; handed back, not counted
CANCELLED = "cancelled"  # stopped by its cancel (JobCancelled raised in it)


class EnqueueInfo:
    """A job about to be enqueued (before_enqueue): add to `headers` to send them along."""

    __slots__ = ("job_id", "task", "queue", "args", "kwargs", "headers", "due")

    def __init__(self, job_id: str, task: str, queue: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any], headers: dict[str, str], due: float = 0.0) -> None:
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.args = args
        self.kwargs = kwargs
        self.headers = headers  # the job's own dict: what a hook puts here travels
        self.due = due  # epoch seconds of a delayed job, 0.0 for now


class AttemptInfo:
    """One attempt of a job, from before_attempt to after_attempt (and on_retry / on_dead_letter).

    `outcome`, `error`, `retry_in` and `finished` are set once the attempt
    ended. `state` is free for middleware (one dict per attempt, so no
    locking is needed when several jobs run at once).
    """

    __slots__ = ("job_id", "task", "queue", "attempt", "args", "kwargs", "headers", "worker",
                 "started", "finished", "outcome", "error", "retry_in", "state")

    def __init__(self, job_id: str, task: str, queue: str, attempt: int,
                 args: tuple[Any, ...], kwargs: dict[str, Any], headers: Mapping[str, str],
                 worker: str, started: float) -> None:
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt  # 1 for the first run
        self.args = args
        self.kwargs = kwargs
        self.headers = headers
        self.worker = worker  # the consumer name (node, pid, start time)
        self.started = started  # wall clock
        self.finished = 0.0
        self.outcome = ""  # SUCCEEDED, RETRY, FAILED or INTERRUPTED
        self.error: BaseException | None = None
        self.retry_in: float | None = None  # seconds until the next attempt (RETRY)
        self.state: dict[str, Any] = {}

    def fields(self) -> dict[str, Any]:
        """The job's context as plain data (for error reporters and log lines)."""
        return {"job_id": self.job_id, "task": self.task, "queue": self.queue,
                "attempt": self.attempt, "worker": self.worker, "outcome": self.outcome,
                "headers": dict(self.headers), "args": list(self.args),
                "kwargs": dict(self.kwargs)}


class WorkerInfo:
    """A worker process at after_child_boot / before_child_exit."""

    __slots__ = ("consumer", "slot", "generation", "pid", "queues")

    def __init__(self, consumer: str, slot: int, generation: int, pid: int,
                 queues: tuple[str, ...]) -> None:
        self.consumer = consumer
        self.slot = slot  # 1..workers in a pool; 0 for `supervisor worker` and drain()
        self.generation = generation  # bumped by each reload of the master
        self.pid = pid
        self.queues = queues


class ReloadInfo:
    """The master's reload (on_reload, in the master: no Redis there)."""

    __slots__ = ("generation", "previous_generation", "workers")

    def __init__(self, generation: int, previous_generation: int, workers: int) -> None:
        self.generation = generation
        self.previous_generation = previous_generation
        self.workers = workers


class Middleware:
    """Base class of a middleware: override the hook points you need, leave the rest.

    Hook points that are not overridden are never called and cost nothing.
    """

    def before_enqueue(self, job: EnqueueInfo) -> None:
        """Producer side, before the message is encoded: may add `job.headers`."""

    def after_child_boot(self, worker: WorkerInfo) -> None:
        """In each worker process after the fork and the task imports, before its first job:
        open per-process resources here (database pools, clients)."""

    def before_child_exit(self, worker: WorkerInfo) -> None:
        """In each worker process on a normal way out (stop, reload, recycle): close them."""

    def before_attempt(self, attempt: AttemptInfo) -> None:
        """Before each attempt runs, in the thread that runs it."""

    def after_attempt(self, attempt: AttemptInfo) -> None:
        """After each attempt, with `attempt.outcome` / `error` set, in the same thread."""

    def on_retry(self, attempt: AttemptInfo) -> None:
        """A failed attempt that will be retried in `attempt.retry_in` seconds."""

    def on_dead_letter(self, attempt: AttemptInfo) -> None:
        """A job that failed for good and went to the dead-letter stream."""

    def on_cancel(self, attempt: AttemptInfo) -> None:
        """A running job stopped by its cancel (after after_attempt, whose outcome is
        `cancelled`; `error` is the JobCancelled raised in it). A job cancelled before
        it started never had an attempt: no hook runs for it."""

    def on_reload(self, reload: ReloadInfo) -> None:
        """In the master, once a reload (HUP) has begun its new generation."""


BEFORE_POINTS = ("before_enqueue", "after_child_boot", "before_attempt", "on_reload")
AFTER_POINTS = ("after_attempt", "on_retry", "on_dead_letter", "on_cancel",
                "before_child_exit")
HOOK_POINTS = BEFORE_POINTS + AFTER_POINTS

Call = tuple[str, Callable[[Any], None]]  # (the middleware's name, its bound hook)


def name_of(middleware: object) -> str:
    kind = type(middleware)
    return f"{kind.__module__}.{kind.__qualname__}"


def _calls(middleware: Iterable[object], point: str) -> tuple[Call, ...]:
    found: list[Call] = []
    base = getattr(Middleware, point)
    for item in middleware:
        method = getattr(type(item), point, None)
        if method is None or method is base:  # not hooked: never called
            continue
        found.append((name_of(item), getattr(item, point)))
    return tuple(found if point in BEFORE_POINTS else reversed(found))


class Hooks:
    """The hook calls of one process, per point; immutable, so safe across threads."""

    __slots__ = ("middleware", "before_enqueue", "after_child_boot", "before_child_exit",
                 "before_attempt", "after_attempt", "on_retry", "on_dead_letter", "on_cancel",
                 "on_reload", "attempts")

    def __init__(self, middleware: Iterable[object] = ()) -> None:
        self.middleware = every = tuple(middleware)
        self.before_enqueue = _calls(every, "before_enqueue")
        self.after_child_boot = _calls(every, "after_child_boot")
        self.before_child_exit = _calls(every, "before_child_exit")
        self.before_attempt = _calls(every, "before_attempt")
        self.after_attempt = _calls(every, "after_attempt")
        self.on_retry = _calls(every, "on_retry")
        self.on_dead_letter = _calls(every, "on_dead_letter")
        self.on_cancel = _calls(every, "on_cancel")
        self.on_reload = _calls(every, "on_reload")
        # The one test on the path of every job: does anything watch attempts?
        self.attempts = bool(self.before_attempt or self.after_attempt or self.on_retry
                             or self.on_dead_letter or self.on_cancel)

    def __bool__(self) -> bool:
        return bool(self.middleware)

    def run(self, point: str, info: Any) -> None:
        """Call every hook of `point` with `info`; log and skip one that raises."""
        for name, hook in getattr(self, point):
            try:
                hook(info)
            except (Exception, SystemExit):  # noqa: BLE001 - a hook never hurts the job
                extra = _log_fields(info)
                log.exception("hook %s.%s raised; ignored (the %s goes on)", name, point,
                              "job" if extra else "process", extra=extra)

    # --- the attempt, as the runner sees it -----------------------------------------

    def attempt_begins(self, job: Any, worker: str) -> AttemptInfo:
        """Make the attempt's info from a Job and run before_attempt."""
        info = AttemptInfo(job.id, job.task, job.queue, job.attempt, job.args, job.kwargs,
                           job.headers, worker, time.time())
        self.run("before_attempt", info)
        return info

    def attempt_failed(self, info: AttemptInfo, error: BaseException, finished: float,
                       retry_due_ms: int) -> None:
        """A failed attempt: retried when a next one is due (epoch ms), else dead-lettered."""
        if retry_due_ms:
            self.attempt_ends(info, RETRY, error, finished,
                              max(0.0, retry_due_ms / 1000 - finished))
        else:
            self.attempt_ends(info, FAILED, error, finished)

    def attempt_ends(self, info: AttemptInfo, outcome: str, error: BaseException | None,
                     finished: float, retry_in: float | None = None) -> None:
        """Record how it ended; run after_attempt, then on_retry or on_dead_letter."""
        info.outcome, info.error, info.finished, info.retry_in = (outcome, error, finished,
                                                                   retry_in)
        self.run("after_attempt", info)
        if outcome == RETRY:
            self.run("on_retry", info)
        elif outcome == FAILED:
            self.run("on_dead_letter", info)
        elif outcome == CANCELLED:
            self.run("on_cancel", info)


NO_HOOKS = Hooks()


def _log_fields(info: Any) -> dict[str, Any] | None:
    if isinstance(info, AttemptInfo | EnqueueInfo):
        return {"job_id": info.job_id, "task": info.task, "queue": info.queue}
    return None


def check_spec(spec: str) -> str | None:
    """What is wrong with a `package.module:Class` name, or None."""
    module, colon, attribute = spec.partition(":")
    if not colon or not module or not attribute:
        return f"{spec!r} is not package.module:Class"
    if not all(part.isidentifier() for part in (*module.split("."), *attribute.split("."))):
        return f"{spec!r} is not package.module:Class (not Python names)"
    return None


def load(spec: str) -> object:
    """Import `package.module:Class` and return an instance (a ready object is taken as is).

    Raises ValueError saying what is wrong: a bad name, a failed import, a
    missing attribute, a class that cannot be built without arguments.
    """
    problem = check_spec(spec)
    if problem:
        raise ValueError(f"middleware {problem}")
    module_name, _, attribute = spec.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure reads the same
        raise ValueError(f"middleware {spec}: cannot import {module_name}: "
                         f"{type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"middleware {spec}: {module_name} has no {attribute}") from None
    if isinstance(found, type):
        try:
            found = found()
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"middleware {spec}: {attribute}() failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not any(callable(getattr(found, point, None)) for point in HOOK_POINTS):
        raise ValueError(f"middleware {spec} defines none of the hook points "
                         f"({', '.join(HOOK_POINTS)})")
    return found
