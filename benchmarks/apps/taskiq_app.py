"""taskiq's benchmark tasks on taskiq-redis's stream broker and producer.

Workers: `taskiq worker benchmarks.apps.taskiq_app:broker --workers 2` (and
`--max-async-tasks 16` for the IO-bound table, whose `io` task is async). No
result backend (taskiq's default); the group starts at id 0 so jobs sent
before the workers start are delivered.
"""

from __future__ import annotations

from typing import Any

from taskiq_redis import RedisStreamBroker

from benchmarks.apps import common

BULK = False  # no bulk API: a loop of kiq()
ASYNC = True

broker = RedisStreamBroker(url=common.redis_url(), queue_name="default", consumer_id="0")


@broker.task(task_name="bench.incr")
async def incr() -> None:
    await common.aincr()


@broker.task(task_name="bench.noop")
async def noop() -> None:
    return None


@broker.task(task_name="bench.latency")
async def latency(sent: float) -> None:
    await common.alatency(sent)


@broker.task(task_name="bench.sleep")
async def sleep(seconds: float) -> None:
    await common.asleep(seconds)


@broker.task(task_name="bench.mark")
async def mark(index: int) -> None:
    await common.amark(index)


@broker.task(task_name="bench.io")
async def io() -> None:
    await common.aio()


TASKS = {"incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark,
         "io": io}


class Producer:
    async def send(self, kind: str, args: tuple[Any, ...]) -> None:
        await TASKS[kind].kiq(*args)

    async def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        chosen = TASKS[kind]
        for args in arglists:
            await chosen.kiq(*args)

    async def close(self) -> None:
        await broker.shutdown()


async def producer() -> Producer:
    await broker.startup()
    return Producer()
