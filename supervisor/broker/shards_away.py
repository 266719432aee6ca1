"""Queues whose cluster shard does not answer, skipped for a moment so the others go on.

On a Redis Cluster a worker's queues may live on several shards. One shard
down (a master killed with no replica to take over, a partition) must not
stop the worker from running the jobs of the shards that answer: its reads
and its chores (promotions, forwards) skip the queues of that shard for
RETRY_AFTER seconds, then try them again. A queue is skipped, never dropped:
its entries stay in its stream and are read once its shard answers.

When every queue asked is away, the caller gets the error as before (an
outage of everything it serves, ridden out with backoff by the worker loop).
On a single server none of this applies: a failure there is the whole
server's, so Broker keeps no ShardsAway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import redis

log = logging.getLogger("supervisor.broker")

RETRY_AFTER = 1.0  # seconds a queue whose shard did not answer is skipped
# What a shard that does not answer raises (a refused write or a script error is
# the caller's business, not a shard away).
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

T = TypeVar("T")


def unreachable(reply: object) -> bool:
    """Is this reply, put in place of an answer, a shard that did not answer?"""
    return isinstance(reply, UNREACHABLE)


class ShardsAway:
    """Which queues to skip for now, and the log of when their shard left and came back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until: dict[str, float] = {}  # queue -> when to try its shard again

    def reachable(self, queues: Iterable[str]) -> list[str]:
        """`queues` without those skipped for now; all of them if every one is (the
        caller then meets the error itself)."""
        queues = list(queues)
        if not self.until:
            return queues
        now = self.clock()
        up = [queue for queue in queues if self.until.get(queue, 0.0) <= now]
        return up or queues

    def failed(self, queue: str, exc: BaseException) -> None:
        if queue not in self.until:
            log.warning("the shard of queue %s does not answer (%s): its jobs wait there "
                        "and are read again once it does; this worker goes on with the "
                        "queues of the other shards", queue, exc)
        self.until[queue] = self.clock() + RETRY_AFTER

    def answered(self, queue: str) -> None:
        if self.until.pop(queue, None) is not None:
            log.warning("the shard of queue %s answers again", queue)

    def each(self, queues: Iterable[str], call: Callable[[str], T]) -> list[T]:
        """`call(queue)` for every reachable queue; a queue whose shard does not answer is
        skipped for now. Raises the error only if no queue's shard answered."""
        done: list[T] = []
        error: BaseException | None = None
        for queue in self.reachable(queues):
            try:
                done.append(call(queue))
            except UNREACHABLE as exc:
                self.failed(queue, exc)
                error = exc
                continue
            self.answered(queue)
        if error is not None and not done:
            raise error
        return done
