"""arq's benchmark jobs (`arq benchmarks.apps.arq_app.WorkerSettings`) and producer.

arq's defaults: up to 10 concurrent jobs per worker, results kept an hour
(`IOWorkerSettings`, for the IO-bound table: 16).
"""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from benchmarks.apps import common

BULK = False  # no bulk API: a loop of enqueue_job
ASYNC = True


async def incr(ctx: dict[str, Any]) -> None:
    await common.aincr()


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def latency(ctx: dict[str, Any], sent: float) -> None:
    await common.alatency(sent)


async def sleep(ctx: dict[str, Any], seconds: float) -> None:
    await common.asleep(seconds)


async def mark(ctx: dict[str, Any], index: int) -> None:
    await common.amark(index)


async def io(ctx: dict[str, Any]) -> None:
    await common.aio()


class WorkerSettings:
    functions = [incr, noop, latency, sleep, mark, io]
    redis_settings = RedisSettings.from_dsn(common.redis_url())


class IOWorkerSettings:
    """The IO-bound table: IO_SLOTS jobs at once per worker, arq's other defaults (arq
    reads a settings class's own attributes only, not inherited ones)."""

    functions = WorkerSettings.functions
    redis_settings = WorkerSettings.redis_settings
    max_jobs = common.io_slots()


class Producer:
    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    async def send(self, kind: str, args: tuple[Any, ...]) -> None:
        await self.pool.enqueue_job(kind, *args)

    async def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        for args in arglists:
            await self.pool.enqueue_job(kind, *args)

    async def close(self) -> None:
        await self.pool.aclose()


async def producer() -> Producer:
    return Producer(await create_pool(WorkerSettings.redis_settings))
