"""The one object a master hands each child, built before the fork.

Everything the child needs from its master travels here, not through module
globals or environment variables set for it: the configuration (which also
carries the job limit, `max_jobs_per_child`, and the log settings; the log
handlers themselves are inherited set up), which slot and generation it
fills, its status block, the node-state buffer the master writes, and the
directory of the metric files when the master serves /metrics.

The shared mappings in it (status block, node-state buffer) survive the
fork: both processes see the same pages afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from supervisor.config import Config
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.fork.status import ChildStatus


@dataclass(frozen=True, slots=True)
class ChildContext:
    config: Config
    slot: int  # 1..workers: which place in the pool the child fills
    generation: int  # bumped by each reload
    status: ChildStatus  # written by the child, read by the master
    node_state: NodeStateBuffer | None = None  # written by the master, published by workers
    metrics_dir: str | None = None  # the master serves /metrics from the files in here
    # A worker of this pool has served before: a child booting during a Redis
    # outage then boots and rides the outage like its peers (a reload or a
    # replacement is not held up); before that it waits for Redis to answer.
    pool_served: bool = False


class ChildTarget(Protocol):
    """What runs in a forked child (the real one is `supervisor.worker.child.child_main`)."""

    def __call__(self, context: ChildContext) -> object: ...
