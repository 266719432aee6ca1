"""Tasks of the priority and queue-order tests: each records the order in which jobs start.

`mark_<queue>(label)` (one task per queue, since enqueue_many takes the queue from
the task) appends its label to the list t:order when it starts; `hold` also
records its child's pid and sleeps, so a test can SIGKILL a child holding it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from supervisor import task

QUEUES = ("pq", "other", "wa", "wb", "wc", "sa", "sb")
# lazy_redis lives in the tests' folder: workers have only this one on their path.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from lazy_redis import LazyRedis  # noqa: E402

recorder = LazyRedis(lambda: os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


def _marker(queue: str) -> Any:
    def mark(label: str) -> str:
        recorder().rpush("t:order", f"{queue}:{label}")
        return label

    mark.__qualname__ = mark.__name__ = f"mark_{queue}"
    return task(name=f"priority_tasks.mark_{queue}", queue=queue)(mark)


MARKS = {queue: _marker(queue) for queue in QUEUES}


@task(queue="pq", priority=9)
def hold(label: str) -> str:
    """Starts (label and pid recorded), waits until t:release exists (30 s at most: a
    test that failed leaves no worker stuck), ends (counted in t:ends)."""
    client = recorder()
    client.rpush("t:order", f"pq:{label}")
    client.rpush("t:pids", os.getpid())
    deadline = time.monotonic() + 30
    while not client.exists("t:release") and time.monotonic() < deadline:
        time.sleep(0.02)
    client.hincrby("t:ends", label, 1)
    return label


# Workflow steps of priority 9 (tests/integration/test_workflow_priorities.py): each
# records its start as the markers do; `urgent_total` is a chord's callback.


@task(name="priority_tasks.urgent", queue="pq", priority=9)
def urgent(label: str) -> str:
    recorder().rpush("t:order", f"pq:{label}")
    return label


@task(name="priority_tasks.urgent_other", queue="other", priority=9)
def urgent_other(label: str) -> str:
    recorder().rpush("t:order", f"other:{label}")
    return label


@task(name="priority_tasks.urgent_total", queue="pq", priority=9)
def urgent_total(values: list[Any], label: str) -> str:
    recorder().rpush("t:order", f"pq:{label}")
    return label
