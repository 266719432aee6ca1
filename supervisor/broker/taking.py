"""The taking side of the Broker: consumer groups, fetching entries, marking jobs taken.

What a worker does before it runs a batch: read it (broker/fetching.py does the
reads), record which jobs it holds and their cancel requests (take.lua), admit
or park the jobs of limited tasks (broker/limits.py), skip paused queues.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from redis.exceptions import NoScriptError

from supervisor.broker import control, keys, levels
from supervisor.broker.base import BrokerBase
from supervisor.broker.direct import raise_error_reply
from supervisor.broker.fetching import Delivery
from supervisor.broker.limits import Gated, LimitGate, Waited


class Taking(BrokerBase):
    """Fetching: ensure_groups, fetch, mark_taken, admit_limited, paused_queues."""

    def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create each queue's streams (its priority levels in use too) and consumer group
        if missing.

        The group starts at id 0, so jobs added before any worker existed are
        delivered too.
        """
        for queue in queues:
            for stream in levels.streams(queue, levels.read_levels(self.client, queue)):
                try:
                    self.client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
                except redis.exceptions.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False,
              plan: Sequence[tuple[str, int]] | None = None) -> list[Delivery]:
        """Read up to `count` new entries (or, with own_pending, this consumer's unacked ones).

        Within a queue the highest priority level first; among queues as `plan`
        says ((queue, quota) in order, from core/queue_order.py; by default the
        strict order of `queues`); see broker/fetching.py.
        """
        reader = self._fetcher
        if own_pending:
            known = dict(self._each(queues, lambda queue: (
                queue, levels.read_levels(self.client, queue))))
            found = reader.own(consumer, list(known), count, known)
        else:
            if plan is None:
                plan = [(queue, count if index == 0 else 0) for index, queue in enumerate(queues)]
            found = reader.read(consumer, plan, count, block_ms)
        # Queues with cancel requests pending (their jobs are then all checked by mark_taken).
        self.cancels_seen = reader.cancels_seen
        if reader.lost:
            # The stream vanished (flushed, or Redis restarted without data):
            # recreate it and read again on the next call.
            self.ensure_groups(reader.lost)
        return found

    def mark_taken(self, taken: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]:
        """Record which jobs a worker holds: {queue: {job id: "worker started-at"}}; returns
        those among them with a cancel request: (queue, job id) -> the cancel JSON (see
        take.lua; explicit job ids repeat across queues).

        One command per queue per fetched batch; readers report such jobs as
        started (a worker holds no more than ~100 ms of work it has not begun).
        """
        commands = [self._take.args((keys.running(queue), keys.cancels(queue)),
                                    [part for pair in fields.items() for part in pair])
                    for queue, fields in taken.items()]
        replies = self.direct.call_many(commands)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self._take.load()  # a restarted or flushed server: taking again is harmless
            replies = self.direct.call_many(commands)
        raise_error_reply(replies)
        cancelled: dict[tuple[str, str], str] = {}
        for queue, reply in zip(taken, replies, strict=True):
            pairs = list(reply or ())
            cancelled.update(((queue, str(job_id)), str(info))
                             for job_id, info in zip(pairs[::2], pairs[1::2], strict=True))
        return cancelled

    def admit_limited(self, consumer: str, by_queue: dict[str, list[Gated]],
                      now_ms: int) -> dict[str, list[Waited]]:
        """Admit the fetched jobs of limited tasks, or send them to wait (limit_take.lua):
        {queue: the jobs sent to wait}."""
        if self._gate is None:
            self._gate = LimitGate(self.direct, self.client)
        return self._gate.admit(consumer, by_queue, now_ms)

    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` are paused (see broker/control.py)."""
        return set(control.paused(self.client, queues))
