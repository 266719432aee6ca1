"""Tasks of the high-availability tests: every execution is counted in a ledger Redis.

Imported by the nodes (`--tasks ha_tasks`, this folder on their path) and by
the tests to enqueue. The ledger (`HA_LEDGER_URL`) is a plain server of the
test's own that no fault touches, so a failover cannot erase what ran.
`work` counts each execution in the hash `ha:runs`; `refuse` rejects its job
(a dead letter, on purpose).
"""

from __future__ import annotations

import os
import time

from lazy_redis import LazyRedis

from supervisor import Reject, Task, TaskContext, task

LEDGER_RUNS = "ha:runs"
# On three different shards of a 3-master cluster: slots 865, 15419 and 9053.
QUEUES = ("alpha", "beta", "delta")
ledger = LazyRedis(lambda: os.environ["HA_LEDGER_URL"], decode_responses=True,
                   socket_timeout=5, socket_connect_timeout=5)


def _work(self: TaskContext, ms: int) -> int:
    """Count this execution, then work for `ms` milliseconds."""
    ledger().hincrby(LEDGER_RUNS, self.request.id, 1)
    time.sleep(ms / 1000)
    return ms


def _refuse(self: TaskContext) -> None:
    """Dead-letter this job (Reject), counted like any execution."""
    ledger().hincrby(LEDGER_RUNS, self.request.id, 1)
    raise Reject("refused on purpose")


work = task(name="ha_tasks.work", bind=True)(_work)  # on the queue 'default'
WORK: dict[str, Task[..., int]] = {
    queue: task(name=f"ha_tasks.work_{queue}", queue=queue, bind=True)(_work)
    for queue in QUEUES}
REFUSE: dict[str, Task[..., None]] = {
    queue: task(name=f"ha_tasks.refuse_{queue}", queue=queue, bind=True)(_refuse)
    for queue in QUEUES}


def _mark(self: TaskContext, label: str) -> str:
    """Append "<queue>:<label>" to the ledger list ha:order when it starts (the
    priority and queue-order tests read the order of starts)."""
    ledger().rpush(LEDGER_ORDER, f"{self.request.queue}:{label}")
    return label


LEDGER_ORDER = "ha:order"
MARK: dict[str, Task[..., str]] = {
    queue: task(name=f"ha_tasks.mark_{queue}", queue=queue, bind=True)(_mark)
    for queue in QUEUES}
