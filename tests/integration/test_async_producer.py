"""The async producer API from an asyncio program, against a real worker.

`await task.adelay()`, `aapply_async()` (idempotent job ids), `aenqueue_many()`
and `await result.aget()`: the same results and errors as the sync calls,
on redis.asyncio, without blocking the loop.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import concurrent_tasks as ct
import pytest
import redis
import sample_tasks

import supervisor
from supervisor import TaskFailed
from supervisor.errors import BrokerUnavailable

pytestmark = pytest.mark.usefixtures("producer")


def test_the_async_producer_api_from_an_asyncio_program(
        start_master: Callable[..., subprocess.Popen[bytes]], redis_url: str) -> None:
    start_master("--workers", "1", "--concurrency", "8",
                 tasks="concurrent_tasks,sample_tasks")
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    async def main() -> dict[str, Any]:
        ticks = 0

        async def ticker() -> None:  # runs all along: nothing here blocks the loop
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        one = await ct.sync_job.adelay(21, 0.01)
        other = await ct.async_job.aapply_async((5,), {"seconds": 0.01}, job_id="fixed-id")
        again = await ct.async_job.aapply_async((5,), {"seconds": 0.01}, job_id="fixed-id")
        many = await supervisor.aenqueue_many(ct.sync_job.s(n, 0.01) for n in range(20))
        failing = await sample_tasks.always_fails.adelay()
        results = {
            "one": await one.aget(timeout=30),
            "other": await other.aget(timeout=30),
            "again": await again.aget(timeout=30),
            "ids": (other.id, again.id),
            "many": await asyncio.gather(*(r.aget(timeout=30) for r in many)),
            "record": await one.ainfo(),
        }
        with pytest.raises(TaskFailed):
            await failing.aget(timeout=30)
        slow = await ct.sync_job.adelay(1, 1.0)
        with pytest.raises(TimeoutError):
            await slow.aget(timeout=0.2)
        beat.cancel()
        results["ticks"] = ticks
        return results

    results = asyncio.run(main())
    assert results["one"] == 42
    assert results["other"] == results["again"] == 15
    assert results["ids"] == ("fixed-id", "fixed-id")
    assert int(client.hget("t:runs", "fixed-id") or 0) == 1  # the second enqueue added nothing
    assert results["many"] == [n * 2 for n in range(20)]
    assert results["record"]["state"] == "succeeded"
    assert results["ticks"] > 0


def test_the_async_producer_says_redis_is_away_as_the_sync_one_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import supervisor.api.aproducer as aproducer

    monkeypatch.setattr(aproducer, "ENQUEUE_RETRY_SECONDS", 0.3)
    supervisor.configure(redis_url="redis://127.0.0.1:1/0")  # nothing listens there

    async def main() -> None:
        await ct.sync_job.adelay(1)

    with pytest.raises(BrokerUnavailable, match="cannot reach Redis"):
        asyncio.run(main())
