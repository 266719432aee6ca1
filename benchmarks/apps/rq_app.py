"""RQ's benchmark jobs (functions importable by path) and producer.

Workers: `rq worker-pool` or `rq worker --worker-class rq.worker.SimpleWorker`.
Results are kept for RQ's default result_ttl (its default behaviour).
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue

from benchmarks.apps import common

BULK = True  # Queue.enqueue_many: pipelined

incr = common.incr
noop = common.noop
latency = common.latency
sleep = common.sleep
mark = common.mark

FUNCS = {"incr": incr, "noop": noop, "latency": latency, "sleep": sleep, "mark": mark}


class Producer:
    def __init__(self) -> None:
        self.queue = Queue("default", connection=redis.Redis.from_url(common.redis_url()))

    def send(self, kind: str, args: tuple[Any, ...]) -> None:
        self.queue.enqueue(FUNCS[kind], *args)

    def send_many(self, kind: str, arglists: list[tuple[Any, ...]]) -> None:
        func = FUNCS[kind]
        for start in range(0, len(arglists), 1000):
            self.queue.enqueue_many([Queue.prepare_data(func, args)
                                     for args in arglists[start:start + 1000]])

    def close(self) -> None:
        self.queue.connection.close()


def producer() -> Producer:
    return Producer()
