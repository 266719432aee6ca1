"""Dramatiq's benchmark actors (`dramatiq benchmarks.apps.dramatiq_app`) and producer.

Default middleware, no results backend (Dramatiq's default).
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.apps import common

BULK = False  # no bulk API: a loop of send()

broker = RedisBroker(url=common.redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_incr", queue_name="default")
def incr() -> None:
    common.incr()


@dramatiq.actor(actor_name="bench_noop", queue_name="default")
def noop() -> None:
    common.noop()


@dramatiq.actor(actor_name="bench_latency", queue_name="default")
def latency(sent: float) -> None:
    common.latency(sent)


@dramatiq.actor(actor_name="bench_sleep", queue_name="default")
def sleep(seconds: float) -> None:
    common.sleep(seconds)


@dramatiq.actor(actor_name="bench_mark", queue_name="default")
def mark(index: int) -> None:
    common.mark(index)


@dramatiq.actor(actor_name="bench_io", queue_name="default")
def io() -> None:
    common.io()


ACTORS = {"incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark,
          "io": io}


class Producer:
    def send(self, kind: str, args: tuple[Any, ...]) -> None:
        ACTORS[kind].send(*args)

    def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        actor = ACTORS[kind]
        for args in arglists:
            actor.send(*args)

    def close(self) -> None:
        return None


def producer() -> Producer:
    return Producer()
