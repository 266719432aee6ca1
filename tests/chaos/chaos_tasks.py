"""The chaos workload: one task that records every execution in a ledger Redis.

Imported by the nodes (`--tasks chaos_tasks`, PYTHONPATH set to this folder)
and by the harness to enqueue. Each execution pushes `S <start> <node> <pid>`
when it begins and `E <start> <node> <pid> <end>` when its work is done, to
the list `chaos:x:<job id>`, and counts itself in the hash `chaos:runs`.
The ledger is `CHAOS_LEDGER_URL` (the chaos suite's own server, which the
harness never kills, so a broker crash cannot erase what ran); the node
name is `CHAOS_NODE`.
"""

from __future__ import annotations

import os
import time

from lazy_redis import LazyRedis

from supervisor import TaskContext, task

LEDGER_RUNS = "chaos:runs"
# The queues of a chaos run; the producer spreads jobs over them (`work` is
# enqueued with queue=...), the nodes read overlapping sets of them.
QUEUES = ("default", "alpha", "beta")
# The chaos suite's own server (the harness never kills it, so a broker crash cannot
# erase what ran); the broker's URL when run outside a chaos run.
ledger = LazyRedis(lambda: os.environ.get("CHAOS_LEDGER_URL")
                   or os.environ["SUPERVISOR_REDIS_URL"],
                   decode_responses=True, socket_timeout=3, socket_connect_timeout=3)


def execution_key(job_id: str) -> str:
    return f"chaos:x:{job_id}"


@task(bind=True)
def work(self: TaskContext, ms: int) -> int:
    """Record the start, work for `ms` milliseconds (sleeping), record the end."""
    node, pid, job_id = os.environ.get("CHAOS_NODE", "?"), os.getpid(), self.request.id
    started = f"{time.time():.6f}"
    pipe = ledger().pipeline(transaction=True)
    pipe.rpush(execution_key(job_id), f"S {started} {node} {pid}")
    pipe.hincrby(LEDGER_RUNS, job_id, 1)
    pipe.execute()
    time.sleep(ms / 1000)
    ledger().rpush(execution_key(job_id), f"E {started} {node} {pid} {time.time():.6f}")
    return ms
