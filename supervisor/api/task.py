"""A task: `Task`, and what it hands out: its signatures and the context of a bound run.

`Task` is what @task (api/registry.py) makes; `.s()` / `.si()` give a
`Signature` (a task with its arguments, for `enqueue_many` or a workflow step),
and a `bind=True` task gets a `TaskContext` first (`self.request`,
`self.retry()`, `self.progress()`). They name each other, so they live together.
`Flow` groups the flow-control options Task checks.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from supervisor.api import context
from supervisor.api.context import Request
from supervisor.api.task_modules import module_name
from supervisor.core import jsonio
from supervisor.core.limits import Limits, check_unique, make_limits
from supervisor.core.priority import check_priority
from supervisor.core.retry import RetryPolicy
from supervisor.errors import Retry

if TYPE_CHECKING:
    from supervisor.api.aproducer import AsyncProducer
    from supervisor.api.producer import Producer
    from supervisor.api.result import AsyncResult

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"


class Task(Generic[P, R]):
    """A registered task. Call it to run locally; `.delay()` to enqueue."""

    def __init__(
        self,
        fn: Callable[..., R],
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        timeout: float | None = None,
        policy: RetryPolicy | None = None,
        bind: bool = False,
        result_ttl: int | None = None,
        ignore_result: bool = False,
        expires: float | None = None,
        flow: Flow | None = None,
        priority: int = 0,
    ) -> None:
        check_priority(priority, f"priority of task {fn.__qualname__}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout of task {fn.__qualname__} must be positive, got {timeout}")
        if expires is not None and expires <= 0:
            raise ValueError(f"expires of task {fn.__qualname__} must be positive seconds, "
                             f"got {expires}")
        self.fn = fn
        self.name = name or f"{module_name(fn)}.{fn.__qualname__}"
        self.queue = queue
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.bind = bind
        self.result_ttl = result_ttl
        self.ignore_result = ignore_result
        self.expires = expires  # default seconds a job may wait to start (None: no limit)
        flow = flow or Flow()
        self.limits: Limits | None = make_limits(self.name, flow.rate_limit,
                                                 flow.concurrency_limit, flow.limit_key)
        # Seconds an equal job's lock lives (0: the result TTL); None: not unique.
        self.unique_ttl: int | None = check_unique(self.name, flow.unique, flow.unique_for,
                                                   flow.unique_key)
        self.unique_key = flow.unique_key
        self.priority = priority  # of its jobs unless one is given; 0-9, higher runs first
        # An `async def` task runs on its worker's event loop, never on a thread.
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as Celery does for a plain call.

        A retry asked for with the exception that caused it (`raise
        self.retry(exc=exc)`) raises that exception: a local call has no
        queue to retry on, and the caller should see what went wrong.
        """
        try:
            if self.bind:
                request = Request(id="local", task=self.name, queue=self.queue, attempt=1)
                return self.fn(TaskContext(self, request), *args, **kwargs)
            return self.fn(*args, **kwargs)
        except Retry as asked:
            if asked.exc is None:
                raise
            raise asked.exc from None

    def run_job(self, request: Request) -> R:
        """Run for a job of the worker (binds the context when asked)."""
        args = request.args
        kwargs = request.kwargs or {}
        if self.bind:
            return self.fn(TaskContext(self, request), *args, **kwargs)
        return self.fn(*args, **kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        return Signature(self, tuple(args), dict(kwargs))

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: as a chain's step it ignores the previous result."""
        return Signature(self, tuple(args), dict(kwargs), immutable=True)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue with these arguments on the task's queue."""
        # args is a fresh tuple and kwargs a fresh dict already: no copies.
        return _producer_getter()().submit(self, args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        job_id: str | None = None,
        headers: dict[str, str] | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
    ) -> AsyncResult[R]:
        """Enqueue with options.

        `countdown` (seconds) or `eta` (an aware datetime) delay the job.
        `expires` (seconds from now, or an aware datetime; default the task's
        `expires`): a job not started by then is not run (state `cancelled`,
        reason `expired`).
        `job_id` makes the enqueue idempotent: while a job with that id is
        known (its record lives for the result TTL), enqueueing the same id
        again adds nothing and returns the existing job's AsyncResult, so a
        producer may safely retry after a timeout. `headers` (str to str)
        travel with the job to every attempt (`self.request.headers`).
        `priority` (0-9, default the task's): within its queue a job of a higher
        priority is fetched before every job of a lower one (README "Priorities").
        """
        return _producer_getter()().submit(
            self, tuple(args), dict(kwargs or {}), countdown=countdown, eta=eta,
            queue=queue, job_id=job_id, headers=headers, expires=expires, priority=priority,
        )

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """delay() from asyncio code: `await add.adelay(4, 5)` (never blocks the loop)."""
        return await _async_producer_getter()().submit(self, args, kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        job_id: str | None = None,
        headers: dict[str, str] | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
    ) -> AsyncResult[R]:
        """apply_async() from asyncio code, with the same options and idempotence."""
        return await _async_producer_getter()().submit(
            self, tuple(args), dict(kwargs or {}), countdown=countdown, eta=eta,
            queue=queue, job_id=job_id, headers=headers, expires=expires, priority=priority,
        )


@functools.cache
def _async_producer_getter() -> Callable[[], AsyncProducer]:
    """`aproducer.current_async_producer`, imported on first use."""
    from supervisor.api.aproducer import current_async_producer

    return current_async_producer


@functools.cache
def _producer_getter() -> Callable[[], Producer]:
    """`producer.current_producer`, imported on first use (producer imports this module)."""
    from supervisor.api.producer import current_producer

    return current_producer


class TaskContext:
    """The first argument of a `bind=True` task, as in Celery."""

    def __init__(self, task: Task[Any, Any], request: Request) -> None:
        self.task = task
        self.request = request
        self.name = task.name
        self.last_progress: str | None = None  # JSON of the last progress() call

    def progress(self, value: Any, meta: Any = None) -> None:
        """Report how far the job got: `value` a fraction 0-1 or any JSON value, `meta` any
        JSON value beside it. Cheap to call in a tight loop: the worker keeps the latest
        and writes it about once a second (`result.progress`, `supervisor job`, `status`
        show it; the job's record keeps the last one when it ends)."""
        try:
            text = jsonio.dumps({"value": value, "meta": meta, "at": time.time()})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"progress of {self.name} is not JSON-serialisable: {exc}") from None
        self.last_progress = text
        sink = context.progress_sink
        if sink is not None:
            sink(self.request, text)

    def retry(self, exc: BaseException | None = None, countdown: float | None = None) -> Retry:
        """Ask for another attempt after `countdown` seconds.

        Raises `Retry`; write `raise self.retry(...)` as in Celery, or just call it.
        """
        raise Retry(delay=countdown, exc=exc)


@dataclass(frozen=True, slots=True)
class Flow:
    """The flow-control options of @task (README "Rate limits, concurrency limits and
    unique jobs"), checked by Task."""

    rate_limit: str | None = None
    concurrency_limit: int | None = None
    limit_key: Callable[..., Any] | None = None
    unique: bool = False
    unique_for: float | None = None
    unique_key: Callable[..., Any] | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """A task with its arguments, ready to enqueue (see `enqueue_many`) or to be a step of
    a workflow (`a.s(1) | b.s()`, api/canvas.py). `immutable` (made by `.si()`): in a
    chain it does not receive the previous step's result."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int | None = None  # None: the task's
    immutable: bool = False
    queue: str | None = None  # None: the task's
    countdown: float | None = None  # seconds from when its job is made until it is due

    def set(self, *, priority: int | None = None, queue: str | None = None,
            countdown: float | None = None) -> Signature:
        """This signature with options of its own, as Celery's `sig.set(...)`: `priority`
        (0-9, higher runs first), `queue` (instead of the task's) and `countdown` (seconds
        its job waits once made: for `enqueue_many`, from now; for a workflow step, from
        when the step before it settles), for `enqueue_many`
        (`enqueue_many(t.s(i).set(queue="bulk") for i in ...)`) and workflow steps
        (`a.s(1) | b.s().set(queue="gpu", countdown=60)`)."""
        changes: dict[str, Any] = {}
        if priority is not None:
            changes["priority"] = check_priority(priority)
        if queue is not None:
            if not isinstance(queue, str) or not queue.strip():
                raise ValueError(f"queue must be a queue name, got {queue!r}")
            changes["queue"] = queue
        if countdown is not None:
            if isinstance(countdown, bool) or not isinstance(countdown, (int, float)) \
                    or not countdown >= 0:
                raise ValueError(f"countdown must be seconds >= 0, got {countdown!r}")
            changes["countdown"] = float(countdown)
        if not changes:
            raise TypeError("set() takes priority=, queue= and/or countdown=")
        return dataclasses.replace(self, **changes)

    def __or__(self, other: Any) -> Any:
        """`a.s(1) | b.s()`: the chain of both (see supervisor.chain)."""
        from supervisor.api.canvas import chain

        return chain(self, other)
