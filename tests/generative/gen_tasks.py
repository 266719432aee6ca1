"""Tasks of the configuration-space test: every execution is written to a ledger.

Imported by the nodes (`--tasks gen_tasks`, this folder on their path) and by
the test to enqueue. For each queue name there is a task declared on that
queue (enqueue_many takes a job's queue from its task) and an
`ignore_result` twin. An execution pushes `S <attempt> <node> <pid> <start>
<queue>` when it begins and `E <attempt> <node> <pid> <start> ok|fail` when
its work is done, to the list `gen:x:<job id>`. An attempt numbered up to
`fail_times` fails on purpose (a retry under the task's policy); a later one
returns `marker`, so the test can tell that each job's record carries its
own result.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from lazy_redis import LazyRedis
from tenacity import stop_after_attempt, wait_fixed

from supervisor import Task, TaskContext, task

QUEUE_NAMES = ("q0", "q1", "q2", "q3")
MAX_ATTEMPTS = 4  # fail_times is at most MAX_ATTEMPTS - 1
ledger = LazyRedis(lambda: os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


def execution_key(job_id: str) -> str:
    return f"gen:x:{job_id}"


def _work(self: TaskContext, ms: int, fail_times: int, marker: str) -> str:
    attempt, queue = self.request.attempt, self.request.queue
    node, pid, started = os.environ.get("GEN_NODE", "?"), os.getpid(), f"{time.time():.6f}"
    key = execution_key(self.request.id)
    ledger().rpush(key, f"S {attempt} {node} {pid} {started} {queue}")
    time.sleep(ms / 1000)
    failing = attempt <= fail_times
    ledger().rpush(key, f"E {attempt} {node} {pid} {started} {'fail' if failing else 'ok'}")
    if failing:
        raise ValueError(f"planned failure of attempt {attempt}")
    return marker


async def _awork(self: TaskContext, ms: int, fail_times: int, marker: str) -> str:
    """_work as an `async def` task (its ledger writes are short, on a local Redis)."""
    attempt, queue = self.request.attempt, self.request.queue
    node, pid, started = os.environ.get("GEN_NODE", "?"), os.getpid(), f"{time.time():.6f}"
    key = execution_key(self.request.id)
    ledger().rpush(key, f"S {attempt} {node} {pid} {started} {queue}")
    await asyncio.sleep(ms / 1000)
    failing = attempt <= fail_times
    ledger().rpush(key, f"E {attempt} {node} {pid} {started} {'fail' if failing else 'ok'}")
    if failing:
        raise ValueError(f"planned failure of attempt {attempt}")
    return marker


def _declare(queue: str, forget: bool, asynchronous: bool = False) -> Task[..., Any]:
    kind = ("aforget" if forget else "awork") if asynchronous else ("forget" if forget else "work")
    return task(name=f"gen_tasks.{kind}_{queue}", queue=queue, bind=True, ignore_result=forget,
                wait=wait_fixed(0.05), stop=stop_after_attempt(MAX_ATTEMPTS))(
                    _awork if asynchronous else _work)


WORK = {queue: _declare(queue, forget=False) for queue in QUEUE_NAMES}
FORGET = {queue: _declare(queue, forget=True) for queue in QUEUE_NAMES}
AWORK = {queue: _declare(queue, forget=False, asynchronous=True) for queue in QUEUE_NAMES}
AFORGET = {queue: _declare(queue, forget=True, asynchronous=True) for queue in QUEUE_NAMES}
