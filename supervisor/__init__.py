"""supervisor: a prefork worker-pool supervisor for Redis-backed jobs.

Public API: `task`, `Retry`, `Reject`, `TaskFailed`, `AsyncResult`,
`configure`, `enqueue_many`. Importing this package opens no connection and
starts nothing; Redis-facing modules load on first use, so the master side
(which must never need Redis) stays free of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.api.registry import Task, TaskContext, task
from supervisor.core.schedule import periodic
from supervisor.errors import JobTimeout, Reject, Retry, TaskFailed

if TYPE_CHECKING:
    from supervisor.api.producer import configure, enqueue_many
    from supervisor.api.result import AsyncResult

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "JobTimeout",
    "Reject",
    "Retry",
    "Task",
    "TaskContext",
    "TaskFailed",
    "configure",
    "enqueue_many",
    "periodic",
    "task",
]

_LAZY = {
    "AsyncResult": "supervisor.api.result",
    "configure": "supervisor.api.producer",
    "enqueue_many": "supervisor.api.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
