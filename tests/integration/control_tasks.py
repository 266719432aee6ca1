"""Tasks for the control tests (cancel, expiry, pause): each records its runs in Redis.

`t:runs` counts runs per job id; `t:started:<id>` is set when a job begins and
`t:finally:<id>` when its `finally:` block ran (a cancelled job must run it).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis

from supervisor import JobCancelled, TaskContext, task

_client: redis.Redis | None = None
_lock = threading.Lock()


def recorder() -> redis.Redis:
    global _client
    with _lock:  # called from several threads at once
        if _client is None:
            _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"],
                                           decode_responses=True)
        return _client


@task(bind=True)
def count(self: TaskContext, n: int) -> int:
    recorder().hincrby("t:runs", self.request.id, 1)
    return n


@task(bind=True)
def count_in_queue(self: TaskContext, n: int) -> int:
    """count(), recorded per queue and id: an explicit id may be used in several queues."""
    recorder().hincrby("t:runs:by-queue", f"{self.request.queue} {self.request.id}", 1)
    return n


@task(bind=True, expires=0.5)
def short_lived(self: TaskContext, n: int) -> int:
    """Expires half a second after enqueue unless started by then (a task default)."""
    recorder().hincrby("t:runs", self.request.id, 1)
    return n


@task(bind=True)
def long_sync(self: TaskContext, seconds: float = 60.0) -> str:
    client = recorder()
    client.set(f"t:started:{self.request.id}", os.getpid())
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"
    finally:
        client.set(f"t:finally:{self.request.id}", "1")


@task(bind=True)
async def long_async(self: TaskContext, seconds: float = 60.0) -> str:
    client = recorder()
    client.set(f"t:started:{self.request.id}", os.getpid())
    try:
        await asyncio.sleep(seconds)
        return "done"
    finally:
        client.set(f"t:finally:{self.request.id}", "1")


@task(bind=True)
def stubborn(self: TaskContext, seconds: float = 60.0) -> str:
    """Swallows JobCancelled: only the grace kill stops it."""
    client = recorder()
    client.set(f"t:started:{self.request.id}", os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except JobCancelled:
            client.set(f"t:swallowed:{self.request.id}", "1")
    return "outlived"


@task(bind=True)
def brief(self: TaskContext, n: int, seconds: float = 0.3) -> int:
    recorder().hincrby("t:runs", self.request.id, 1)
    time.sleep(seconds)
    return n


@task(bind=True)
def reporting(self: TaskContext, steps: int) -> int:
    """Reports progress in a tight loop, then waits until the test saw it mid-way."""
    client = recorder()
    for step in range(steps):
        self.progress((step + 1) / steps, {"step": step + 1})
    client.set(f"t:started:{self.request.id}", os.getpid())
    deadline = time.monotonic() + 30
    while not client.exists(f"t:go:{self.request.id}") and time.monotonic() < deadline:
        time.sleep(0.01)
    self.progress(1.0, {"step": "done"})
    return steps
