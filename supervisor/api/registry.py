"""The @task decorator, `Task`, and the registry of task names (the allow-list).

Only registered names ever run: a worker looks the message's task name up
here and dead-letters anything it does not know.

A job's context (Request, TaskContext) is api/context.py's; a call with its
options (Signature, Flow) api/signature.py's; naming and importing the modules
that define tasks api/task_modules.py's. Their names stay importable from here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeVar,
    overload,
)

from tenacity import stop_after_attempt

from supervisor.api.context import Request, TaskContext, set_progress_sink
from supervisor.api.signature import Flow, Signature
from supervisor.api.task_modules import import_task_modules, module_name
from supervisor.core.limits import Limits, check_unique, make_limits
from supervisor.core.priority import check_priority
from supervisor.core.retry import RetryPolicy
from supervisor.errors import Retry, UnknownTask

if TYPE_CHECKING:
    from supervisor.api.aproducer import AsyncProducer
    from supervisor.api.producer import Producer
    from supervisor.api.result import AsyncResult

__all__ = [
    "DEFAULT_QUEUE", "Flow", "Request", "Signature", "Task", "TaskContext", "has_limits",
    "import_task_modules", "is_registered", "lookup", "module_name", "registered_names",
    "set_progress_sink", "task",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
_REGISTRY: dict[str, Task[Any, Any]] = {}
# Names of the registered tasks with a rate or concurrency limit: a worker whose
# registry has none skips the limit gate entirely (worker/limits.py).
_LIMITED: set[str] = set()

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


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = ...,
    queue: str = ...,
    timeout: float | None = ...,
    stop: Any = ...,
    wait: Any = ...,
    retry: Any = ...,
    max_retries: int | None = ...,
    bind: Literal[False] = ...,
    result_ttl: int | None = ...,
    ignore_result: bool = ...,
    expires: float | None = ...,
    rate_limit: str | None = ...,
    concurrency_limit: int | None = ...,
    limit_key: Callable[..., Any] | None = ...,
    unique: bool = ...,
    unique_for: float | None = ...,
    unique_key: Callable[..., Any] | None = ...,
    priority: int = ...,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


@overload
def task(
    *,
    name: str | None = ...,
    queue: str = ...,
    timeout: float | None = ...,
    stop: Any = ...,
    wait: Any = ...,
    retry: Any = ...,
    max_retries: int | None = ...,
    bind: Literal[True],
    result_ttl: int | None = ...,
    ignore_result: bool = ...,
    expires: float | None = ...,
    rate_limit: str | None = ...,
    concurrency_limit: int | None = ...,
    limit_key: Callable[..., Any] | None = ...,
    unique: bool = ...,
    unique_for: float | None = ...,
    unique_key: Callable[..., Any] | None = ...,
    priority: int = ...,
) -> Callable[[Callable[Concatenate[TaskContext, P], R]], Task[P, R]]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    timeout: float | None = None,
    stop: Any = None,
    wait: Any = None,
    retry: Any = None,
    max_retries: int | None = None,
    bind: bool = False,
    result_ttl: int | None = None,
    ignore_result: bool = False,
    expires: float | None = None,
    rate_limit: str | None = None,
    concurrency_limit: int | None = None,
    limit_key: Callable[..., Any] | None = None,
    unique: bool = False,
    unique_for: float | None = None,
    unique_key: Callable[..., Any] | None = None,
    priority: int = 0,
) -> Any:
    """Register a function as a task; see the README for every option.

    `stop`, `wait` and `retry` are tenacity strategies with tenacity's
    meaning; `max_retries=N` is shorthand for `stop=stop_after_attempt(N + 1)`.
    Unset strategies keep the default policy (3 attempts, exponential backoff
    with jitter from 1 s capped at 60 s, retry on any Exception).
    `rate_limit`, `concurrency_limit` (optionally per `limit_key`) and `unique`
    / `unique_for` / `unique_key` are the flow controls (core/limits.py).
    """
    if max_retries is not None and stop is not None:
        raise ValueError("give either stop= or max_retries=, not both")
    default = RetryPolicy()
    policy = RetryPolicy(
        stop=stop if stop is not None else (
            stop_after_attempt(max_retries + 1) if max_retries is not None else default.stop
        ),
        wait=wait if wait is not None else default.wait,
        retry=retry if retry is not None else default.retry,
    )

    def register(function: Callable[..., Any]) -> Task[Any, Any]:
        made: Task[Any, Any] = Task(
            function, name=name, queue=queue, timeout=timeout, policy=policy, bind=bind,
            result_ttl=result_ttl, ignore_result=ignore_result, expires=expires,
            flow=Flow(rate_limit, concurrency_limit, limit_key, unique, unique_for, unique_key),
            priority=priority,
        )
        _REGISTRY[made.name] = made
        if made.limits is not None:
            _LIMITED.add(made.name)
        else:
            _LIMITED.discard(made.name)
        return made

    return register(fn) if fn is not None else register


def has_limits() -> bool:
    """Whether some registered task has a rate or concurrency limit."""
    return bool(_LIMITED)


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def lookup(name: str) -> Task[Any, Any]:
    try:
        return _REGISTRY[name]
    except KeyError:
        if name.startswith("__main__."):
            raise UnknownTask(
                f"task {name!r} was defined in a script run directly (python script.py): "
                "no worker can import module __main__; define the task in a module the "
                "workers import with --tasks (this version names a script's tasks after "
                "its module)") from None
        raise UnknownTask(
            f"task {name!r} is not registered in this worker; check --tasks"
        ) from None
