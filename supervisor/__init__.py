"""supervisor: a prefork worker-pool supervisor for Redis-backed jobs.

Public API: `task`, `Retry`, `Reject`, `TaskFailed`, `AsyncResult`,
`configure`, `enqueue_many`, `aenqueue_many`, `periodic`, the workflows
`chain`, `group`, `chord`, and the hooks'
`Middleware` with the objects its hook points receive. Importing this package opens no
connection, starts nothing and does not import redis: the producer and
results (api/producer.py, api/result.py) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.api.canvas import chain, chord, group
from supervisor.api.periodic import periodic
from supervisor.api.registry import Task, task
from supervisor.api.task import TaskContext
from supervisor.core.middleware import (
    AttemptInfo,
    EnqueueInfo,
    Middleware,
    ReloadInfo,
    WorkerInfo,
)
from supervisor.errors import JobCancelled, JobTimeout, Reject, Retry, TaskFailed
from supervisor.version import __version__ as __version__

if TYPE_CHECKING:
    from supervisor.api.aproducer import aenqueue_many
    from supervisor.api.producer import configure, enqueue_many
    from supervisor.api.result import AsyncResult

__all__ = [
    "AsyncResult",
    "AttemptInfo",
    "EnqueueInfo",
    "JobCancelled",
    "JobTimeout",
    "Middleware",
    "Reject",
    "ReloadInfo",
    "Retry",
    "Task",
    "TaskContext",
    "TaskFailed",
    "aenqueue_many",
    "chain",
    "chord",
    "configure",
    "enqueue_many",
    "group",
    "periodic",
    "WorkerInfo",
    "task",
]

_LAZY = {
    "AsyncResult": "supervisor.api.result",
    "aenqueue_many": "supervisor.api.aproducer",
    "configure": "supervisor.api.producer",
    "enqueue_many": "supervisor.api.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
