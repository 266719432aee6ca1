"""saq's benchmark job (`saq benchmarks.apps.saq_app.settings --workers 2`) and producer.

saq is in the IO-bound table only: its `io` job is async; each worker process
runs `concurrency` jobs at once (16 here; saq's default is 10), other settings
saq's defaults (results kept 600 s).
"""

from __future__ import annotations

from typing import Any

from saq import Queue

from benchmarks.apps import common

BULK = False  # no bulk enqueue that does not wait for the results: a loop of enqueue()
ASYNC = True

queue = Queue.from_url(common.redis_url(), name="default")


async def io(ctx: dict[str, Any]) -> None:
    await common.aio()


settings = {"queue": queue, "functions": [io], "concurrency": common.io_slots()}


class Producer:
    async def send(self, kind: str, args: tuple[Any, ...]) -> None:
        await queue.enqueue(kind)

    async def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        for _ in arglists:
            await queue.enqueue(kind)

    async def close(self) -> None:
        await queue.disconnect()


async def producer() -> Producer:
    await queue.connect()
    return Producer()
