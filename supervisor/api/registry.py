"""The @task decorator and the registry of task names (the allow-list).

Only registered names ever run: a worker looks the message's task name up
here and dead-letters anything it does not know.

The Task itself, its signatures and the context of a bound run are
api/task.py's, a job's Request api/context.py's, naming and importing the
modules that define tasks api/task_modules.py's. Their names stay importable
from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import (
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    TypeVar,
    overload,
)

from tenacity import stop_after_attempt

from supervisor.api.context import Request, set_progress_sink
from supervisor.api.task import DEFAULT_QUEUE, Flow, Signature, Task, TaskContext
from supervisor.api.task_modules import import_task_modules, module_name
from supervisor.core.retry import RetryPolicy
from supervisor.errors import UnknownTask

__all__ = [
    "DEFAULT_QUEUE", "Flow", "Request", "Signature", "Task", "TaskContext", "has_limits",
    "import_task_modules", "is_registered", "lookup", "module_name", "registered_names",
    "set_progress_sink", "task",
]

P = ParamSpec("P")
R = TypeVar("R")

_REGISTRY: dict[str, Task[Any, Any]] = {}
# Names of the registered tasks with a rate or concurrency limit: a worker whose
# registry has none skips the limit gate entirely (worker/limits.py).
_LIMITED: set[str] = set()


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
