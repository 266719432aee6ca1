"""Our benchmark tasks (`--tasks benchmarks.apps.ours_app`) and their producer.

BENCH_VARIANT=noresult sends the `ignore_result=True` twins instead;
BENCH_VARIANT=async sends `io_async` (the `async def` twin) for `io`.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.apps import common
from supervisor import Task, configure, enqueue_many, task

BULK = True


@task(name="bench.incr")
def incr() -> None:
    common.incr()


@task(name="bench.noop")
def noop() -> None:
    common.noop()


@task(name="bench.latency")
def latency(sent: float) -> None:
    common.latency(sent)


@task(name="bench.sleep")
def sleep(seconds: float) -> None:
    common.sleep(seconds)


@task(name="bench.mark")
def mark(index: int) -> None:
    common.mark(index)


@task(name="bench.io")
def io() -> None:
    common.io()


@task(name="bench.io_async")
async def io_async() -> None:
    await common.aio()


@task(name="bench.incr_noresult", ignore_result=True)
def incr_noresult() -> None:
    common.incr()


@task(name="bench.noop_noresult", ignore_result=True)
def noop_noresult() -> None:
    common.noop()


@task(name="bench.latency_noresult", ignore_result=True)
def latency_noresult(sent: float) -> None:
    common.latency(sent)


TASKS: dict[str, Task[Any, Any]] = {
    "incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark, "io": io,
}
VARIANTS: dict[str, dict[str, Task[Any, Any]]] = {
    "noresult": {"incr": incr_noresult, "noop": noop_noresult, "latency": latency_noresult},
    "async": {"io": io_async},
}


def _task(kind: str) -> Task[Any, Any]:
    return VARIANTS.get(common.variant(), {}).get(kind) or TASKS[kind]


class Producer:
    def __init__(self) -> None:
        # The broker: the private server, or the cluster of the cluster row.
        configure(redis_url=os.environ.get("BENCH_BROKER_URL") or common.redis_url())

    def send(self, kind: str, args: tuple[Any, ...]) -> None:
        _task(kind).delay(*args)

    def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        chosen = _task(kind)
        enqueue_many(chosen.s(*args) for args in arglists)

    def close(self) -> None:
        return None


def producer() -> Producer:
    return Producer()
