"""The recovering side of the Broker: the consumers of a queue and the entries of dead ones.

Ownership follows liveness (DESIGN.md, section 2): a worker asks which nodes
still have a heartbeat, takes over what a dead consumer held (claim_dead.lua,
which checks the heartbeat again on the queue's shard), and reads its own
pending entries without delivering them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from supervisor.broker import keys, levels, nodes
from supervisor.broker.base import BrokerBase
from supervisor.broker.fetching import Delivery, fields_of


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry taken over from a dead consumer."""

    delivery: Delivery
    idle_ms: int
    deliveries: int


class Recovering(BrokerBase):
    """Recovery: consumers, claim_dead, own_pending, live_nodes."""

    def consumers(self, queue: str) -> list[dict[str, Any]]:
        """XINFO CONSUMERS of the queue's group, over its priority levels (one entry per
        consumer name; [] when the group does not exist yet)."""
        found: dict[str, dict[str, Any]] = {}
        for stream in levels.streams(queue, levels.read_levels(self.client, queue)):
            try:
                for consumer in self.client.xinfo_consumers(stream, keys.GROUP):
                    found.setdefault(str(consumer.get("name", "")), consumer)
            except redis.exceptions.ResponseError:
                continue
        return list(found.values())

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str,
                   batch: int = 500, *, node: str | None = None) -> list[Claimed]:
        """Take over every entry `dead_consumer` held, at every priority level (see
        claim_dead.lua); `node`: the consumer's node when it is another node, whose
        heartbeat on the queue's shard the script checks (nothing is claimed while it
        exists)."""
        heartbeat = [keys.queue_node(queue, node)] if node else []
        claimed: list[Claimed] = []
        for level in (*levels.read_levels(self.client, queue), 0):
            try:
                reply = self._claim_dead(keys=[keys.level_stream(queue, level), *heartbeat],
                                         args=[keys.GROUP, dead_consumer, claimer, batch])
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                continue
            claimed += [Claimed(Delivery(queue, levels.tag(level, str(entry_id)), str(message)),
                                int(idle), int(count))
                        for entry_id, message, idle, count in reply]
        return claimed

    def own_pending(self, consumer: str, queues: Sequence[str], skip: set[tuple[str, str]],
                    count: int) -> list[Delivery]:
        """This consumer's pending entries that are not in `skip` ((queue, entry id) of the
        jobs it runs), read without delivering them again: XPENDING and XRANGE leave the
        entries' idle time alone, which is how a job past its time limit is told when its
        worker is killed (XREADGROUP ... 0 would restart it)."""
        found: list[Delivery] = []
        self.cancels_seen = set(queues)  # rare path: check every job taken
        streams = [(queue, level) for queue in queues
                   for level in (*levels.read_levels(self.client, queue), 0)]
        for queue, level in streams:
            stream = keys.level_stream(queue, level)
            try:
                pending = self.client.xpending_range(stream, keys.GROUP, "-", "+",
                                                     count + len(skip), consumername=consumer)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                continue
            for item in pending:
                entry_id = str(item["message_id"])
                if (queue, levels.tag(level, entry_id)) in skip:
                    continue
                entries = self.client.xrange(stream, entry_id, entry_id)
                if not entries:  # deleted while pending: nothing to run, only to drop
                    self.client.xack(stream, keys.GROUP, entry_id)
                    continue
                message = fields_of(entries[0][1]).get(keys.MESSAGE_FIELD, "")
                found.append(Delivery(queue, levels.tag(level, entry_id), message))
                if len(found) >= count:
                    return found
        return found

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]:
        """Which of these nodes still have a heartbeat (their consumers are alive); with
        `queue`, the heartbeat on that queue's shard (see nodes.live_nodes)."""
        return nodes.live_nodes(self.client, names, queue)
