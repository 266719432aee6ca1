"""The producing side of the Broker: registering queues and adding jobs (enqueue.lua).

The calls themselves are built by broker/enqueue.py, shared with the async
producer (broker/async_streams.py); this mixin sends them over the Broker's
sync client, one job, a schedule's tick, or many jobs in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from redis.exceptions import NoScriptError

from supervisor.broker import keys, replicas
from supervisor.broker.base import BrokerBase
from supervisor.broker.direct import raise_error_reply
from supervisor.broker.enqueue import (
    EnqueueFields,
    EnqueueRequest,
    QueueKeys,
    Tick,
    enqueue_call,
    holder_of,
    queue_keys,
)
from supervisor.broker.queue_registry import UNREACHABLE
from supervisor.core.priority import level_of


class Producing(BrokerBase):
    """Enqueueing: remember_queues, enqueue, fire_tick, enqueue_many."""

    def remember_queues(self, queues: Iterable[str]) -> None:
        """Add new queue names to the registry of queues (once per name and Broker; on a
        cluster whose registry shard is away, later: queue_registry.py)."""
        new = self._registry.to_add(queues)
        if not new:
            return
        try:
            self.direct.call("SADD", keys.QUEUES, *new)
        except UNREACHABLE as exc:
            self._registry.failed(new, exc)
            return
        self._registry.added(new)

    def _keys_of(self, queue: str, level: int = 0) -> QueueKeys:
        """The stream of `level`, delayed set, job record prefix and levels set of a queue
        (queue_keys(), cached)."""
        names = self._queue_keys.get((queue, level))
        if names is None:
            names = self._queue_keys[queue, level] = queue_keys(queue, level)
        return names

    def _enqueue_command(self, queue: str, requests: Iterable[EnqueueFields],
                         now_ms: int, level: int = 0) -> tuple[Any, ...]:
        """The EVALSHA of enqueue.lua adding `requests` (all of `queue` and `level`)."""
        return self._enqueue.args(*enqueue_call(self._keys_of(queue, level), requests,
                                                now_ms))

    def enqueue(self, request: EnqueueRequest, now_ms: int) -> bool | str:
        """Add one job; False when its id is already known (duplicate ignored), or the id of
        the equal job holding its unique lock (nothing added)."""
        if request.queue not in self._registry.known:
            self.remember_queues((request.queue,))
        flag = self._write(self._enqueue, self._enqueue_command(
            request.queue, (request,), now_ms, level_of(request.message)))[0]
        return holder_of(flag) or bool(flag)

    def fire_tick(self, tick: Tick, request: EnqueueRequest, now_ms: int) -> int:
        """Enqueue the job of a schedule's tick unless some worker did already.

        Returns 1 fired (this call enqueued), 0 fired before (or older than the
        last fire), 2 the tick is taken but its job id was already known.
        """
        stream, delayed, prefix, levels_set = self._keys_of(request.queue,
                                                            level_of(request.message))
        command = self._enqueue.args(
            (stream, delayed, keys.schedules(request.queue),
             keys.schedule_tick(request.queue, tick.schedule, tick.tick), prefix + request.job_id,
             *([levels_set] if levels_set else [])),
            ["tick", now_ms, tick.schedule, tick.tick, tick.marker_ttl, tick.last_fire,
             f"{request.job_id} 0 {request.ttl} 0", request.message, request.record])
        flags = self._write(self._enqueue, command)
        return 0 if not flags else (1 if flags[0] == 1 else 2)

    def enqueue_many(self, requests: Iterable[EnqueueFields], now_ms: int,
                     chunk: int = 500) -> list[bool | str]:
        """Add many jobs (True added, False duplicate, or the id of the equal job holding a
        unique lock), in order: one script call per chunk.

        Each chunk's call is sent as soon as the chunk is complete, before
        the replies are read, so Redis runs one chunk while the next is built
        (`requests` may be a generator, consumed once): one round trip in all.
        """
        if self.sharded:
            # The registry's shard is another one: added apart, so a shard away there
            # does not fail jobs whose own shards answer (queue_registry.py).
            requests = list(requests)
            self.remember_queues(request[0] for request in requests)
        calls: list[tuple[Any, ...]] = []  # every command sent: SADD or EVALSHA
        placed: list[list[int] | None] = []  # per command, its requests' positions
        new_queues: list[str] = []
        pending: dict[tuple[str, int], tuple[list[EnqueueFields], list[int]]] = {}

        def commands() -> Iterator[tuple[Any, ...]]:
            for index, request in enumerate(requests):
                queue = request[0]
                where = (queue, level_of(request[2]))  # a priority level is its own stream
                batch = pending.get(where)
                if batch is None:
                    batch = pending[where] = ([], [])
                    if not self.sharded and queue not in self._registry.known and \
                            queue not in new_queues:
                        new_queues.append(queue)  # registered before its first job
                        calls.append(("SADD", keys.QUEUES, queue))
                        placed.append(None)
                        yield calls[-1]
                batch[0].append(request)
                batch[1].append(index)
                if len(batch[0]) >= chunk:
                    del pending[where]
                    calls.append(self._enqueue_command(queue, batch[0], now_ms, where[1]))
                    placed.append(batch[1])
                    yield calls[-1]
            for (queue, level), (rest, positions) in pending.items():
                calls.append(self._enqueue_command(queue, rest, now_ms, level))
                placed.append(positions)
                yield calls[-1]
            if self.wait is not None:  # after every chunk, on the same connection
                calls.append(self.wait)
                placed.append(None)
                yield calls[-1]

        replies = self.direct.call_stream(commands())
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # A restarted or flushed server forgot the script: the calls that
            # failed wrote nothing, so load it and send just those again.
            self._enqueue.load()
            resend = [calls[i] for i in missing]
            if self.wait is not None:
                # The chunks sent again come after the first WAIT: WAIT again behind them,
                # on their connections (on a cluster, each node they went to).
                resend.append(self.wait)
            again = self.direct.call_many(resend)
            for i, reply in zip(missing, again, strict=False):
                replies[i] = reply
            if self.wait is not None:
                replies[-1] = replicas.fewest(replies[-1], again[-1])
        if self.wait is not None:
            replicas.check(replies[-1], self.wait)
        raise_error_reply(replies)
        self._registry.added(new_queues)
        added: list[bool | str] = [False] * sum(len(positions) for positions in placed
                                                if positions)
        for positions, flags in zip(placed, replies, strict=True):
            if positions is not None:
                for index, flag in zip(positions, flags, strict=True):
                    added[index] = flag == 1 or holder_of(flag) or False
        return added
