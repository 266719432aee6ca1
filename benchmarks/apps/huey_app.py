"""huey's benchmark tasks (`huey_consumer benchmarks.apps.huey_app.huey`) and producer.

RedisHuey with its defaults (results on: huey stores non-None return values;
these tasks return None).
"""

from __future__ import annotations

from typing import Any

from huey import RedisHuey

from benchmarks.apps import common

BULK = False  # no bulk API: a loop of task calls

huey = RedisHuey("bench", url=common.redis_url())


@huey.task(name="bench.incr")
def incr() -> None:
    common.incr()


@huey.task(name="bench.noop")
def noop() -> None:
    common.noop()


@huey.task(name="bench.latency")
def latency(sent: float) -> None:
    common.latency(sent)


@huey.task(name="bench.sleep")
def sleep(seconds: float) -> None:
    common.sleep(seconds)


@huey.task(name="bench.mark")
def mark(index: int) -> None:
    common.mark(index)


@huey.task(name="bench.io")
def io() -> None:
    common.io()


TASKS = {"incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark,
         "io": io}


class Producer:
    def send(self, kind: str, args: tuple[Any, ...]) -> None:
        TASKS[kind](*args)

    def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        chosen = TASKS[kind]
        for args in arglists:
            chosen(*args)

    def close(self) -> None:
        return None


def producer() -> Producer:
    return Producer()
