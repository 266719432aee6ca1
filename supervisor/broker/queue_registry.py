"""The registry of queue names (`sv:queues`): which names a producer still has to add.

`status`, the dashboard and `drain()` list queues from this one set. On a
single server it is written before a queue's first job, in the same round
trip, and a failure there is the enqueue's failure. On a Redis Cluster the set
lives on one shard, most queues on others: a producer must not refuse to
enqueue a job whose own shard answers because the registry's shard does not
(every producer that starts while that shard is down would fail every
enqueue). There a failed write of names is logged, the names stay unknown, and
they are tried again with a later enqueue after RETRY_AFTER (not on every
enqueue: a shard cut off answers by timing out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis

log = logging.getLogger("supervisor.broker")

RETRY_AFTER = 5.0  # seconds between tries to add names while the registry's shard is away
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.ClusterDownError)


class QueueRegistry:
    """The names this producer added already, and when to try again the ones it could not."""

    def __init__(self, *, sharded: bool) -> None:
        self.sharded = sharded
        self.known: set[str] = set()
        self._retry_at = 0.0

    def to_add(self, queues: Iterable[str]) -> list[str]:
        """The names of `queues` to add now (sorted; none while backing off)."""
        new = set(queues) - self.known
        if not new or (self._retry_at and time.monotonic() < self._retry_at):
            return []
        return sorted(new)

    def added(self, names: Iterable[str]) -> None:
        self.known.update(names)
        self._retry_at = 0.0

    def failed(self, names: list[str], exc: BaseException) -> None:
        """The write of `names` failed with `exc`: raised on a single server (the job's
        own write would fail too); on a cluster logged, and tried again later."""
        if not self.sharded or not isinstance(exc, UNREACHABLE):
            raise exc
        self._retry_at = time.monotonic() + RETRY_AFTER
        log.warning("the shard of the queue registry does not answer (%s): queues %s are "
                    "not listed by status and the dashboard until it does; their jobs are "
                    "enqueued and run meanwhile", exc, ", ".join(names))
