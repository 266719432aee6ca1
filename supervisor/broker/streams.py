"""The queue operations on Redis Streams: enqueue, fetch, settle, hand back, claim.

Every write that must be atomic is one Lua script (see scripts/*.lua).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from supervisor.broker import keys, scripts

# Per-job value objects on the hot path are NamedTuples: immutable like
# frozen dataclasses, but several times cheaper to create (a frozen
# dataclass sets each field through object.__setattr__).


class Delivery(NamedTuple):
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


class EnqueueRequest(NamedTuple):
    queue: str
    job_id: str
    message: str
    record: str  # the job record (JSON) stored under sv:{q}:job:<id>
    due_ms: int = 0
    ttl: int = 86400
    force: bool = False


class Outcome(NamedTuple):
    """What settling writes: the job record, and optionally a dead letter or next attempt."""

    record: str  # '' deletes the record (ignore_result)
    ttl: int
    dead_letter: str = ""
    retry_message: str = ""
    retry_due_ms: int = 0


class Settlement(NamedTuple):
    """One finished entry and its outcome, for a batched settle()."""

    delivery: Delivery
    job_id: str
    outcome: Outcome


def _settle_args(item: Settlement) -> tuple[str, str, str]:
    """The three settle.lua arguments of one entry: meta, record, extra."""
    result = item.outcome
    if not result.record:
        kind, extra = "x", ""
    elif result.dead_letter:
        kind, extra = "d", result.dead_letter
    elif result.retry_message:
        kind, extra = "n", result.retry_message
    else:
        kind, extra = "r", ""
    meta = f"{item.delivery.entry_id} {item.job_id} {result.ttl} {kind} {result.retry_due_ms}"
    return meta, result.record, extra


def _entry_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


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
        self._settle = scripts.load(client, "settle")
        self._handback = scripts.load(client, "handback")
        self._claim_dead = scripts.load(client, "claim_dead")
        self._known_queues: set[str] = set()

    # --- producing -------------------------------------------------------

    def _remember_queues(self, queues: Iterable[str]) -> None:
        new = set(queues) - self._known_queues
        if new:
            self.client.sadd(keys.QUEUES, *sorted(new))
            self._known_queues |= new

    def _enqueue_call(self, queue: str, requests: Sequence[EnqueueRequest], now_ms: int,
                      client: Any = None) -> Any:
        args: list[Any] = [now_ms, keys.job_prefix(queue)]
        for request in requests:
            force = "1" if request.force else "0"
            args += (f"{request.job_id} {request.due_ms} {request.ttl} {force}",
                     request.message, request.record)
        return self._enqueue(keys=[keys.stream(queue), keys.delayed(queue)], args=args,
                             client=client)

    def enqueue(self, request: EnqueueRequest, now_ms: int) -> bool:
        """Add one job; False when its id is already known (duplicate ignored)."""
        self._remember_queues([request.queue])
        return bool(self._enqueue_call(request.queue, [request], now_ms)[0])

    def enqueue_many(self, requests: Sequence[EnqueueRequest], now_ms: int,
                     chunk: int = 500) -> list[bool]:
        """Add many jobs: one script call per chunk of a queue, all chunks pipelined."""
        self._remember_queues({request.queue for request in requests})
        by_queue: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_queue.setdefault(request.queue, []).append(index)
        added = [False] * len(requests)
        pipe = self.client.pipeline(transaction=False)
        order: list[list[int]] = []
        for queue, indexes in by_queue.items():
            for start in range(0, len(indexes), chunk):
                part = indexes[start : start + chunk]
                self._enqueue_call(queue, [requests[i] for i in part], now_ms, client=pipe)
                order.append(part)
        for part, flags in zip(order, pipe.execute(), strict=True):
            for index, flag in zip(part, flags, strict=True):
                added[index] = bool(flag)
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
            # NOGROUP: no stream/group yet; UNBLOCKED: the stream was deleted
            # while we waited (FLUSHALL, a restart without persistence).
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            # The stream vanished (flushed, or Redis restarted without data):
            # recreate it and read again on the next call.
            self.ensure_groups(queues)
            return []
        deliveries: list[Delivery] = []
        gone: dict[str, list[str]] = {}
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        for stream_name, entries in items:
            for entry in entries if not isinstance(entries, dict) else entries.get("messages", []):
                entry_id, entry_fields = entry[0], entry[1]
                if entry_fields is None:  # deleted while pending: nothing to run
                    gone.setdefault(stream_name, []).append(entry_id)
                    continue
                message = _fields_of(entry_fields).get("m", "")
                deliveries.append(Delivery(by_stream[stream_name], entry_id, message))
        for stream_name, ids in gone.items():  # or they would be read again forever
            self.client.xack(stream_name, keys.GROUP, *ids)
        return deliveries

    def mark_taken(self, taken: dict[str, dict[str, str]]) -> None:
        """Record which jobs a worker holds: {queue: {job id: "worker started-at"}}.

        One command per queue per fetched batch; readers report such jobs as
        started (a worker holds no more than ~100 ms of work it has not begun).
        """
        if len(taken) == 1:
            [(queue, fields)] = taken.items()
            self.client.hset(keys.running(queue), mapping=fields)
            return
        pipe = self.client.pipeline(transaction=False)
        for queue, fields in taken.items():
            pipe.hset(keys.running(queue), mapping=fields)
        pipe.execute()

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int:
        """Write outcomes and acknowledge, atomically per queue; returns how many were ours."""
        by_queue: dict[str, list[Settlement]] = {}
        for item in settlements:
            by_queue.setdefault(item.delivery.queue, []).append(item)
        settled = 0
        for queue, items in by_queue.items():
            ids = sorted((item.delivery.entry_id for item in items), key=_entry_key)
            script_keys = [keys.stream(queue), keys.dead(queue), keys.delayed(queue),
                           keys.running(queue)]
            args: list[Any] = [keys.GROUP, consumer, self.dead_letter_max, now_ms, ids[0], ids[-1],
                               keys.job_prefix(queue)]
            for item in items:
                args += _settle_args(item)
            settled += int(self._settle(keys=script_keys, args=args))
        return settled

    def hand_back(self, consumer: str, items: Sequence[tuple[Delivery, str, str]]) -> int:
        """Put held entries back at the tail of their queues.

        `items` are (delivery, message or '' to keep the entry's own, job id).
        """
        returned = 0
        by_queue: dict[str, list[str]] = {}
        for delivery, message, job_id in items:
            by_queue.setdefault(delivery.queue, []).extend([delivery.entry_id, message, job_id])
        for queue, triples in by_queue.items():
            returned += int(self._handback(keys=[keys.stream(queue), keys.running(queue)],
                                           args=[keys.GROUP, consumer, *triples]))
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
                                       args=[now_ms, batch]))
        return moved
