"""How a worker reads new entries: its queues in the planned order, each queue's priority
levels highest first, blocking only when nothing waits.

A queue that never used a priority is read as before priorities existed: one
XREADGROUP of its stream, with the SMEMBERS of its (empty) levels set in the
same round trip. A queue known to have levels is read by fetch.lua, which
takes the highest levels first in one step. When the levels set of a queue
read the plain way turns out not empty (the first job of a level was just
enqueued), the new levels are read at once, in the same fetch, and their
entries put first: a worker holds one batch more that once, and a job of a
higher level is never left behind a batch of lower ones it could have taken.

Several queues: every queue's quota of the plan (core/queue_order.py) is read
in one round trip (per node on a cluster: each queue its own slot, never a
cross-slot command); what queues short of work left of the count is then
asked of the queues that may have more, in order, one round trip each.

On a cluster, the queues of a shard that does not answer are skipped for a
moment (shards_away.py) and the others read as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
from redis.exceptions import NoScriptError

from supervisor.broker import keys, levels
from supervisor.broker.direct import DirectScript
from supervisor.broker.shards_away import ShardsAway, unreachable
from supervisor.core.queue_order import refill


class Delivery(NamedTuple):
    """One stream entry handed to this consumer (entry id tagged with its level)."""

    queue: str
    entry_id: str
    message: str


def fields_of(entry_fields: Any) -> dict[str, str]:
    if isinstance(entry_fields, dict):
        return entry_fields
    return dict(zip(entry_fields[::2], entry_fields[1::2], strict=False))


def _lost_stream(reply: Any) -> bool:
    """NOGROUP: no stream/group yet; UNBLOCKED: the stream was deleted while we waited
    (FLUSHALL, a restart without persistence). Any other error is raised."""
    if not isinstance(reply, redis.exceptions.ResponseError):
        return False
    if "NOGROUP" in str(reply) or "UNBLOCKED" in str(reply):
        return True
    raise reply


class Fetcher:
    """The reads of Broker.fetch, over the Broker's command sender."""

    def __init__(self, direct: Any, script: DirectScript, away: ShardsAway | None) -> None:
        self.direct = direct
        self.script = script  # fetch.lua
        self.sharded = away is not None
        self.away = away  # on a cluster: queues whose shard does not answer, skipped
        # The priority levels above 0 each queue uses, as last seen: fetch.lua for them,
        # and the streams a blocking read waits on.
        self.levels: dict[str, tuple[int, ...]] = {}
        self.cancels_seen: set[str] = set()
        self.lost: list[str] = []  # queues whose stream vanished in the last read

    def read(self, consumer: str, plan: Sequence[tuple[str, int]], count: int,
             block_ms: int | None) -> list[Delivery]:
        if self.away is not None:
            up = set(self.away.reachable(queue for queue, _ in plan))
            plan = [(queue, wanted) for queue, wanted in plan if queue in up]
        names = [queue for queue, _ in plan]
        self.lost = []
        self.cancels_seen = set(names) if self.sharded else set()
        got: dict[str, int] = {}
        found = self._round(consumer, [(q, n) for q, n in plan if n > 0], got, cancels=names)
        for queue in refill(plan, got, count):
            left = count - len(found)
            if left <= 0:
                break
            found += self._round(consumer, [(queue, left)], got, cancels=[queue])
        if not found and block_ms and not self.lost:
            found = self._block(consumer, names, count, block_ms)
        return ordered(found, names) if len(names) > 1 else found

    def _round(self, consumer: str, asks: list[tuple[str, int]], got: dict[str, int],
               cancels: list[str]) -> list[Delivery]:
        """One round trip: each (queue, n) of `asks` read (plain, or fetch.lua for a queue
        with levels), with the HLEN of `cancels`' cancel hashes on one server."""
        calls: list[Any] = []
        for queue, wanted in asks:
            if self.levels.get(queue):
                calls.append(self.script.args(*levels.fetch_call(
                    [(queue, wanted)], keys.GROUP, consumer, wanted)))
            else:
                calls.append(("XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", wanted,
                              "STREAMS", keys.stream(queue), ">"))
                calls.append(("SMEMBERS", keys.levels(queue)))
        if not self.sharded:  # on a cluster every fetched job is checked by mark_taken
            calls += [("HLEN", keys.cancels(queue)) for queue in cancels]
        if not calls:
            return []
        replies = self._call_many(calls)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self.script.load()  # a restarted or flushed server forgot the script
            replies = self._call_many(calls)
        if not self.sharded and cancels:
            self.cancels_seen |= {queue for queue, n in zip(cancels, replies[-len(cancels):],
                                                            strict=True)
                                  if isinstance(n, int) and n > 0}
        found: list[Delivery] = []
        at = 0
        for queue, wanted in asks:
            if self._away(queue, replies[at]):
                at += 1 if self.levels.get(queue) else 2
                continue
            if self.levels.get(queue):
                reply = replies[at]
                at += 1
                items = [] if _lost_stream(reply) else [
                    Delivery(*item) for item in levels.fetch_reply([queue], reply, self.levels)]
            else:
                reply, members = replies[at], replies[at + 1]
                at += 2
                items = [] if _lost_stream(reply) else deliveries(
                    self.direct, reply, {keys.stream(queue): (queue, 0)})
                if not isinstance(members, Exception) and members:
                    items = self._discovered(consumer, queue, members, wanted) + items
            if isinstance(reply, redis.exceptions.ResponseError):
                self.lost.append(queue)
            got[queue] = got.get(queue, 0) + len(items)
            found += items
        return found

    def _call_many(self, calls: list[Any]) -> list[Any]:
        """call_many; on a cluster, a shard that does not answer gives its error in place
        of its replies, raised only if no shard answered."""
        if self.away is None:
            return list(self.direct.call_many(calls))
        replies = list(self.direct.call_many(calls, in_place=True))
        if all(unreachable(reply) for reply in replies):
            raise replies[0]
        return replies

    def _away(self, queue: str, reply: Any) -> bool:
        """Did the shard of `queue` not answer (its queue then skipped for a moment)?"""
        if self.away is None:
            return False
        if unreachable(reply):
            self.away.failed(queue, reply)
            return True
        self.away.answered(queue)
        return False

    def _discovered(self, consumer: str, queue: str, members: Any,
                    wanted: int) -> list[Delivery]:
        """A queue read the plain way has levels now: read them (fetch.lua) at once."""
        self.levels[queue] = levels.parse_set(members)
        if not self.levels[queue]:
            return []
        reply = self.script.run(self.script.args(*levels.fetch_call(
            [(queue, wanted)], keys.GROUP, consumer, wanted, lowest=1)))
        return [Delivery(*item) for item in levels.fetch_reply([queue], reply, self.levels)]

    def _block(self, consumer: str, queues: list[str], count: int,
               block_ms: int) -> list[Delivery]:
        """Nothing was waiting: block on every level stream of `queues` for the first entry.

        XREADGROUP's COUNT is per stream: `count` is shared among the streams so
        a batch holds about what the caller sized it for. What arrives first is
        taken; the entries are put in queue order, highest level first.
        """
        per_queue = [levels.blocking_streams(queue, self.levels) for queue in queues]
        by_stream = {stream: where for streams in per_queue for stream, where in streams.items()}
        per_stream = -(-count // len(by_stream))

        def read(streams: Sequence[str]) -> tuple[Any, ...]:
            return ("XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", per_stream,
                    "BLOCK", block_ms, "STREAMS", *streams, *([">"] * len(streams)))

        if self.sharded:  # one read per queue (its slot), all blocking together
            replies = self.direct.block_any([read(list(s)) for s in per_queue],
                                            block_ms / 1000, in_place=True)
        else:  # one read of them all, the cancels' HLEN after it
            replies = self.direct.call_many([read(list(by_stream)), *(
                ("HLEN", keys.cancels(queue)) for queue in queues)])
            self.cancels_seen = {queue for queue, n in zip(queues, replies[1:], strict=True)
                                 if isinstance(n, int) and n > 0}
            replies = [replies[0]] * len(queues)  # one reply stands for every queue
        found: list[Delivery] = []
        for index, (queue, reply) in enumerate(zip(queues, replies, strict=True)):
            if self._away(queue, reply):
                continue
            if _lost_stream(reply):
                self.lost.append(queue)
            elif self.sharded or index == 0:
                found += deliveries(self.direct, reply, by_stream)
        return found

    def own(self, consumer: str, queues: Sequence[str], count: int,
            known: dict[str, tuple[int, ...]]) -> list[Delivery]:
        """This consumer's pending entries of every level stream of `queues` (`known`: their
        levels, read afresh), with the whole count per stream, so that a batch shorter
        than `count` means none are left in any stream."""
        self.lost = []
        self.cancels_seen = set(queues)  # rare path: check every job taken
        per_queue = [levels.blocking_streams(queue, known) for queue in queues]
        by_stream = {stream: where for streams in per_queue for stream, where in streams.items()}

        def read(streams: Sequence[str]) -> tuple[Any, ...]:
            return ("XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", count,
                    "STREAMS", *streams, *(["0"] * len(streams)))

        reads = [read(list(s)) for s in per_queue] if self.sharded else [read(list(by_stream))]
        found: list[Delivery] = []
        for index, reply in enumerate(self._call_many(reads)):
            if self._away(queues[index], reply):
                continue
            if _lost_stream(reply):
                self.lost += [queues[index]] if self.sharded else list(queues)
            else:
                found += deliveries(self.direct, reply, by_stream)
        return ordered(found, list(queues))


def ordered(found: list[Delivery], queues: list[str]) -> list[Delivery]:
    """`found` in queue order, the highest priority level of each queue first."""
    if len(found) < 2:
        return found
    rank = {queue: index for index, queue in enumerate(queues)}
    return sorted(found, key=lambda d: (rank[d.queue], -levels.untag(d.entry_id)[0]))


def deliveries(direct: Any, reply: Any, by_stream: dict[str, tuple[str, int]]) -> list[Delivery]:
    """The entries of an XREADGROUP reply, as (queue, entry id tagged with its level,
    message); entries deleted while pending are acknowledged (or they would be read again
    forever)."""
    found: list[Delivery] = []
    gone: dict[str, list[str]] = {}
    # Reply: {stream: [[entry id, [field, value, ...] or nil], ...]} (RESP3, the
    # default of redis-py 8) or [[stream, entries], ...] (RESP2), or nil.
    items = reply.items() if isinstance(reply, dict) else (reply or ())
    for stream_name, entries in items:
        queue, level = by_stream[stream_name]
        for entry_id, entry_fields in entries:
            if entry_fields is None:  # deleted while pending: nothing to run
                gone.setdefault(stream_name, []).append(entry_id)
                continue
            if entry_fields[0] == keys.MESSAGE_FIELD and len(entry_fields) == 2:
                message = entry_fields[1]
            else:
                message = fields_of(entry_fields).get(keys.MESSAGE_FIELD, "")
            found.append(Delivery(queue, levels.tag(level, entry_id) if level else entry_id,
                                  message))
    for stream_name, ids in gone.items():
        direct.call("XACK", stream_name, keys.GROUP, *ids)
    return found
