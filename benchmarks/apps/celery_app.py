"""Celery's benchmark tasks (`celery -A benchmarks.apps.celery_app worker`) and producer.

No result backend (Celery's default). BENCH_VARIANT=acks_late turns on
`task_acks_late` and `task_reject_on_worker_lost`: acknowledgement after the
task, as ours does.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from benchmarks.apps import common

BULK = False  # no bulk API: a loop of apply_async over one producer connection

app = Celery("bench", broker=common.redis_url())
app.conf.update(
    task_default_queue="default",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
if common.variant() == "acks_late":
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True)


@app.task(name="bench.incr")
def incr() -> None:
    common.incr()


@app.task(name="bench.noop")
def noop() -> None:
    common.noop()


@app.task(name="bench.latency")
def latency(sent: float) -> None:
    common.latency(sent)


@app.task(name="bench.sleep")
def sleep(seconds: float) -> None:
    common.sleep(seconds)


@app.task(name="bench.mark")
def mark(index: int) -> None:
    common.mark(index)


@app.task(name="bench.io")
def io() -> None:
    common.io()  # on -P threads or -P gevent (time.sleep is patched), IO_SLOTS at once


TASKS = {"incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark,
         "io": io}


class Producer:
    def send(self, kind: str, args: tuple[Any, ...]) -> None:
        TASKS[kind].delay(*args)

    def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        chosen = TASKS[kind]
        with app.producer_or_acquire() as producer:
            for args in arglists:
                chosen.apply_async(args, producer=producer)

    def close(self) -> None:
        return None


def producer() -> Producer:
    return Producer()
