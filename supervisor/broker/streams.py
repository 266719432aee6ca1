"""The queue operations on Redis Streams: enqueue, fetch, settle, hand back, claim.

Every write that must be atomic is one Lua script (see scripts/*.lua).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from supervisor.broker import keys, scripts


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to this consumer."""

    queue: str
    entry_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry taken over from a dead consumer."""

    delivery: Delivery
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    queue: str
    job_id: str
    task: str
    message: str
    created: float
    due_ms: int = 0
    ttl: int = 86400
    host: str = ""
    force: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What finish() writes: job hash fields, and optionally a dead letter or next attempt."""

    fields: dict[str, str]
    ttl: int  # 0: delete the job hash instead (ignore_result)
    dead_letter: str = ""
    retry_message: str = ""
    retry_due_ms: int = 0


def _fields_of(entry_fields: Any) -> dict[str, str]:
    if isinstance(entry_fields, dict):
        return entry_fields
    return dict(zip(entry_fields[::2], entry_fields[1::2], strict=False))


class Broker:
    """Redis Streams operations for any number of queues, over one client."""

    def __init__(self, client: redis.Redis, *, dead_letter_max: int = 100_000) -> None:
        # Typed loosely: redis-py's stubs do not model decode_responses=True.
        self.client: Any = client
        self.dead_letter_max = dead_letter_max
        self._enqueue = scripts.load(client, "enqueue")
        self._promote = scripts.load(client, "promote")
        self._finish = scripts.load(client, "finish")
        self._handback = scripts.load(client, "handback")
        self._claim_dead = scripts.load(client, "claim_dead")
        self._known_queues: set[str] = set()

    # --- producing -------------------------------------------------------

    def _enqueue_args(self, request: EnqueueRequest, now_ms: int) -> tuple[list[str], list[Any]]:
        return (
            [keys.stream(request.queue), keys.job(request.queue, request.job_id),
             keys.delayed(request.queue)],
            [request.message, request.due_ms, now_ms, request.ttl, request.task,
             repr(request.created), request.host, "1" if request.force else "0"],
        )

    def _remember_queues(self, queues: Iterable[str], pipe: Any = None) -> None:
        new = set(queues) - self._known_queues
        if new:
            (pipe or self.client).sadd(keys.QUEUES, *sorted(new))
            self._known_queues |= new

    def enqueue(self, request: EnqueueRequest, now_ms: int) -> bool:
        """Add one job; False when its id is already known (duplicate ignored)."""
        self._remember_queues([request.queue])
        script_keys, args = self._enqueue_args(request, now_ms)
        return bool(self._enqueue(keys=script_keys, args=args))

    def enqueue_many(self, requests: Sequence[EnqueueRequest], now_ms: int,
                     chunk: int = 1000) -> list[bool]:
        """Add many jobs with pipelined script calls (one round trip per chunk)."""
        self._remember_queues({request.queue for request in requests})
        added: list[bool] = []
        for start in range(0, len(requests), chunk):
            pipe = self.client.pipeline(transaction=False)
            for request in requests[start : start + chunk]:
                script_keys, args = self._enqueue_args(request, now_ms)
                self._enqueue(keys=script_keys, args=args, client=pipe)
            added.extend(bool(flag) for flag in pipe.execute())
        return added

    # --- consuming -------------------------------------------------------

    def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create each queue's stream and consumer group if missing.

        The group starts at id 0, so jobs added before any worker existed are
        delivered too.
        """
        for queue in queues:
            try:
                self.client.xgroup_create(keys.stream(queue), keys.GROUP, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False) -> list[Delivery]:
        """Read up to `count` new entries (or, with own_pending, this consumer's unacked ones)."""
        streams = {keys.stream(queue): ("0" if own_pending else ">") for queue in queues}
        by_stream = {keys.stream(queue): queue for queue in queues}
        try:
            reply = self.client.xreadgroup(keys.GROUP, consumer, streams, count=count,
                                           block=None if own_pending else block_ms)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream vanished (flushed, or Redis restarted without data):
            # recreate it and read again on the next call.
            self.ensure_groups(queues)
            return []
        deliveries: list[Delivery] = []
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        for stream_name, entries in items:
            for entry in entries if not isinstance(entries, dict) else entries.get("messages", []):
                entry_id, entry_fields = entry[0], entry[1]
                if entry_fields is None:  # deleted while pending: nothing to run
                    continue
                message = _fields_of(entry_fields).get("m", "")
                deliveries.append(Delivery(by_stream[stream_name], entry_id, message))
        return deliveries

    def mark_started(self, queue: str, job_id: str, fields: dict[str, str], ttl: int) -> None:
        """Record that an attempt began; the TTL keeps a re-created hash from living forever."""
        key = keys.job(queue, job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl)
        pipe.execute()

    def finish(self, delivery: Delivery, consumer: str, job_id: str, outcome: Outcome,
               now_ms: int) -> bool:
        """Write the outcome and acknowledge, atomically; False if the entry was not ours."""
        queue = delivery.queue
        flat: list[str] = []
        for name, value in outcome.fields.items():
            flat += [name, value]
        settled = self._finish(
            keys=[keys.stream(queue), keys.job(queue, job_id), keys.dead(queue),
                  keys.delayed(queue)],
            args=[keys.GROUP, delivery.entry_id, consumer, outcome.ttl, outcome.dead_letter,
                  self.dead_letter_max, outcome.retry_message, outcome.retry_due_ms, now_ms,
                  *flat],
        )
        return bool(settled)

    def hand_back(self, consumer: str, items: Sequence[tuple[Delivery, str]]) -> int:
        """Put held entries back at the tail of their queues ('' keeps the message)."""
        returned = 0
        by_queue: dict[str, list[str]] = {}
        for delivery, message in items:
            by_queue.setdefault(delivery.queue, []).extend([delivery.entry_id, message])
        for queue, pairs in by_queue.items():
            returned += int(self._handback(keys=[keys.stream(queue)],
                                           args=[keys.GROUP, consumer, *pairs]))
        return returned

    def consumers(self, queue: str) -> list[dict[str, Any]]:
        """XINFO CONSUMERS of the queue's group ([] when the group does not exist yet)."""
        try:
            return list(self.client.xinfo_consumers(keys.stream(queue), keys.GROUP))
        except redis.exceptions.ResponseError:
            return []

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str,
                   batch: int = 500) -> list[Claimed]:
        """Take over every entry `dead_consumer` held (see claim_dead.lua)."""
        reply = self._claim_dead(keys=[keys.stream(queue)],
                                 args=[keys.GROUP, dead_consumer, claimer, batch])
        return [
            Claimed(Delivery(queue, str(entry_id), str(message)), int(idle), int(count))
            for entry_id, message, idle, count in reply
        ]

    def promote(self, queues: Iterable[str], now_ms: int, batch: int = 1000) -> int:
        """Move due delayed jobs of `queues` into their streams."""
        moved = 0
        for queue in queues:
            moved += int(self._promote(keys=[keys.delayed(queue), keys.stream(queue)],
                                       args=[now_ms, batch, keys.job_prefix(queue)]))
        return moved
