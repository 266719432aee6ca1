"""The options of a task call: `Signature` (a task with its arguments) and `Flow`.

A Signature is what `Task.s()` / `.si()` make, for `enqueue_many` or a workflow
step (api/canvas.py); Flow groups the flow-control options of @task. The Task
itself lives in api/registry.py, which imports this module, so a Signature
names its task by what the producer needs of one (Submittable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor.core.priority import check_priority

if TYPE_CHECKING:
    from supervisor.api.producer import Submittable


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

    task: Submittable  # a registered Task (api/registry.py imports this module)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int | None = None  # None: the task's
    immutable: bool = False

    def set(self, *, priority: int) -> Signature:
        """This signature with its own priority (0-9, higher runs first), as Celery's
        `sig.set(priority=...)`: `enqueue_many(t.s(i).set(priority=9) for i in ...)`."""
        return dataclasses.replace(self, priority=check_priority(priority))

    def __or__(self, other: Any) -> Any:
        """`a.s(1) | b.s()`: the chain of both (see supervisor.chain)."""
        from supervisor.api.canvas import chain

        return chain(self, other)
