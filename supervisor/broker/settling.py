"""The settling side of the Broker: writing outcomes and acknowledging, or handing back.

A finished job's outcome (result, retry, dead letter) and its acknowledgement
are one settle.lua call per queue and level; a job held but not finished goes
back to its stream (handback.lua). Both free the job's concurrency slot and
unique lock in the same script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from supervisor.broker import keys, levels, workflow
from supervisor.broker.base import BrokerBase
from supervisor.broker.fetching import Delivery
from supervisor.core.outcome import Outcome

# Per-job value objects on the hot path are NamedTuples: immutable like
# frozen dataclasses, but several times cheaper to create (a frozen
# dataclass sets each field through object.__setattr__).


class Settlement(NamedTuple):
    """One finished entry and its outcome, for a batched settle()."""

    delivery: Delivery
    job_id: str
    outcome: Outcome


def unique_of(message: str) -> str:
    """The digest of the unique lock a job message carries ('' for none): its "uq" is the
    message's last key (core/job.py), so one rfind finds it without decoding. A user's
    kwargs key "uq" can only make a wrong guess, which is harmless: settle.lua deletes
    a lock only if it holds this job's id."""
    at = message.rfind('"uq":"')
    if at < 0:
        return ""
    return message[at + 6:message.find('"', at + 6)]


def _settle_args(item: Settlement, entry_id: str) -> tuple[Any, ...]:
    """The first seven settle.lua values of one entry (see its header)."""
    result = item.outcome
    if result.keep_record:
        kind, extra = "k", ""
    elif not result.record:
        kind, extra = "x", ""
    elif result.dead_letter:
        kind, extra = "d", result.dead_letter
    elif result.retry_message:
        kind, extra = "n", result.retry_message
    else:
        kind, extra = "r", ""
    return (entry_id, item.job_id, result.ttl, kind, result.retry_due_ms,
            result.record, extra)


def wire_text(text: str) -> str | bytes:
    """`text` as it can be sent back: the bytes it was read from when they were not UTF-8.

    Replies are decoded with `surrogateescape` (connection.py), so an entry
    whose bytes are not UTF-8 is read, not a crash; sending it back as is
    would fail to encode, so it goes back as its original bytes.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


# What hand_back takes per job: (delivery, message, job id[, record]).
Requeue = tuple[Delivery, str, str] | tuple[Delivery, str, str, str]


class StreamLost(Exception):
    """The stream or consumer group of a queue vanished under entries being settled.

    Redis lost its data (a restart without persistence, or FLUSHALL): the
    entries, and so the jobs, are gone; there is nothing left to acknowledge.
    """

    def __init__(self, lost: dict[str, int], settled: int) -> None:
        super().__init__(", ".join(f"{count} of queue {queue}" for queue, count in lost.items()))
        self.lost = lost  # queue -> entries that were being settled
        self.settled = settled  # those of other queues that were settled


class Settling(BrokerBase):
    """Settling: settle, hand_back (and the cached keys their scripts need)."""

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int:
        """Write outcomes and acknowledge, atomically per queue; returns how many were ours."""
        # Per queue and priority level: an entry is acknowledged in the stream it came
        # from, and a retry due now goes back to that stream (its level).
        by_stream: dict[tuple[str, int], list[tuple[str, Settlement]]] = {}
        for item in settlements:
            level, entry_id = levels.untag(item.delivery.entry_id)
            by_stream.setdefault((item.delivery.queue, level), []).append((entry_id, item))
        settled = 0
        lost: dict[str, int] = {}
        for (queue, level), pairs in by_stream.items():
            ids = sorted((entry_id for entry_id, _ in pairs), key=levels.stream_order)
            prefix = keys.job_prefix(queue)
            script_keys = [keys.level_stream(queue, level), keys.dead(queue), keys.delayed(queue),
                           keys.running(queue), *self._recent_keys(queue),
                           keys.cancels(queue)]
            args: list[Any] = [keys.GROUP, consumer, self.dead_letter_max, now_ms, ids[0], ids[-1]]
            items = [item for _, item in pairs]
            script_keys += [prefix + item.job_id for item in items]
            # The concurrency-slot keys and the unique locks follow the records (settle.lua
            # finds them at 10 + entries), before the workflow keys settle_flows appends.
            uniques = [unique_of(item.delivery.message) for item in items]
            script_keys += (*self._limit_keys(queue),
                            *(keys.unique(queue, digest) for digest in uniques if digest))
            # A workflow member's next step / chord count (broker/workflow.py), two values
            # after its seven, naming keys appended after the records.
            flows = workflow.settle_flows(queue, items, script_keys)
            for (entry_id, item), flow, digest in zip(pairs, flows, uniques, strict=True):
                args += _settle_args(item, entry_id)
                args += flow
                args.append(digest)
            try:
                settled += int(self._write(self._settle, self._settle.args(script_keys, args)))
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                lost[queue] = lost.get(queue, 0) + len(pairs)  # the others are still settled
        if lost:
            raise StreamLost(lost, settled)
        return settled

    def _limit_keys(self, queue: str) -> tuple[str, ...]:
        """The 15 keys settle.lua and handback.lua free concurrency slots with (cached; see
        limit_release.lua): the slot keys, then the levels set and the stream of every
        level, since a waiter woken for a freed slot goes back to its own level."""
        names = self._limits.get(queue)
        if names is None:
            held, count, waiting, _, _, waits = keys.limit_keys(queue)
            names = self._limits[queue] = (held, count, waiting, waits, keys.levels(queue),
                                           *levels.all_streams(queue))
        return names

    def _recent_keys(self, queue: str) -> tuple[str, ...]:
        """The queue's browse-index keys for settle.lua (cached; see broker/recent.py)."""
        names = self._recent.get(queue)
        if names is None:
            names = self._recent[queue] = tuple(keys.recent(queue, state)
                                                for state in keys.RECENT_STATES)
        return names

    def hand_back(self, consumer: str, items: Sequence[Requeue]) -> int:
        """Put held entries back at the tail of their queues.

        `items` are (delivery, message to re-add, job id) or, to also replace
        the job's record (how an interrupted or orphaned attempt ended),
        (delivery, message, job id, record).
        """
        returned = 0
        by_stream: dict[tuple[str, int], tuple[list[str], list[str | bytes]]] = {}
        for delivery, message, job_id, *written in items:
            queue = delivery.queue
            level, entry_id = levels.untag(delivery.entry_id)  # back to the stream it came from
            names, quadruples = by_stream.setdefault(
                (queue, level), ([keys.level_stream(queue, level), keys.running(queue)], []))
            names.append(keys.job(queue, job_id))
            quadruples.extend([entry_id, wire_text(message), job_id,
                               written[0] if written else ""])
        for (queue, _), (names, quadruples) in by_stream.items():
            returned += int(self._handback(keys=[*names, *self._limit_keys(queue)],
                                           args=[keys.GROUP, consumer, *quadruples]))
        return returned
