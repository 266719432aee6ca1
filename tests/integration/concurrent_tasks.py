"""Tasks for the --concurrency tests: sync and async, each records its runs in Redis.

`t:runs` counts runs per job id; `t:inflight` is how many run at this moment
and `t:peak` the most seen at once (so a test can tell jobs really overlapped).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis
import redis.asyncio

from supervisor import TaskContext, task

_client: redis.Redis | None = None
_lock = threading.Lock()

_PEAK = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now
"""


def recorder() -> redis.Redis:
    global _client
    with _lock:  # called from several threads at once
        if _client is None:
            _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"],
                                           decode_responses=True)
        return _client


def _begin(job_id: str) -> None:
    client = recorder()
    client.rpush(f"t:starts:{job_id}", repr(time.time()))
    client.rpush("t:pids", os.getpid())
    client.eval(_PEAK, 2, "t:inflight", "t:peak")


def _end(job_id: str) -> None:
    client = recorder()
    client.decr("t:inflight")
    client.hincrby("t:runs", job_id, 1)


@task(bind=True)
def sync_job(self: TaskContext, n: int, seconds: float = 0.05) -> int:
    _begin(self.request.id)
    time.sleep(seconds)
    _end(self.request.id)
    return n * 2


@task(bind=True)
async def async_job(self: TaskContext, n: int, seconds: float = 0.05) -> int:
    # The recorder is sync: its calls are short, on a local Redis (the loop-lag
    # watchdog would say so if they were not).
    _begin(self.request.id)
    await asyncio.sleep(seconds)
    _end(self.request.id)
    return n * 3


@task(bind=True, timeout=1.0, max_retries=0)
def sync_overruns(self: TaskContext) -> str:
    """Runs for 60 s in Python code: its soft timeout (1 s) must stop it."""
    recorder().rpush(f"t:starts:{self.request.id}", repr(time.time()))
    for _ in range(1200):
        time.sleep(0.05)
    return "never"


@task(bind=True, timeout=1.0, max_retries=0)
async def async_overruns(self: TaskContext) -> str:
    recorder().rpush(f"t:starts:{self.request.id}", repr(time.time()))
    await asyncio.sleep(60)
    return "never"


@task(bind=True)
def pill(self: TaskContext, seconds: float = 0.3) -> None:
    """Kills its worker (and every job beside it) a moment after it starts."""
    recorder().rpush(f"t:starts:{self.request.id}", repr(time.time()))
    time.sleep(seconds)
    os._exit(9)


@task(bind=True)
async def blocks_loop(self: TaskContext, seconds: float = 1.0) -> str:
    """Blocks the event loop (a sync sleep inside async def): the watchdog must say so."""
    time.sleep(seconds)
    return "blocked"


@task(bind=True, timeout=1.0, max_retries=0)
def ignores_timeout(self: TaskContext) -> str:
    """Swallows its soft timeout and runs on: only the master's hard limit stops it."""
    recorder().rpush(f"t:starts:{self.request.id}", repr(time.time()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001 - on purpose: it ignores JobTimeout
            continue
    return "never"
