"""Flow control in Redis: the take gate of limited jobs, and reading what waits.

The gate is limit_take.lua, run once per queue for the limited jobs of a
fetched batch (jobs of tasks without limits never reach it: no round trip,
no cost). Slots are freed by settle.lua and handback.lua, unique locks are
taken by enqueue.lua and dropped by settle.lua (and cancel.lua): every key is
one of the queue's fixed keys (keys.limit_keys) or a lock declared in KEYS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from supervisor.broker import keys, levels, scripts
from supervisor.broker.direct import DirectScript, raise_error_reply


class Gated(NamedTuple):
    """One fetched job of a limited task, for the gate (see limit_take.lua's ARGV)."""

    entry_id: str
    job_id: str
    slot: str  # concurrency limit name, '' for none
    most: int  # its most slots
    rate: str  # rate limit name, '' for none
    per_period: int  # its starts per period
    period_ms: int
    burst: int
    slot_message: str  # the message it waits with for a slot
    rate_message: str  # the message it waits with for its turn


class Waited(NamedTuple):
    """A job the gate sent to wait: its entry, why ('rate' or 'concurrency'), until when
    (epoch ms; 0 for a slot: until one frees)."""

    entry_id: str
    kind: str
    due_ms: int


class LimitGate:
    """Runs limit_take.lua for the limited jobs of one fetched batch, per queue."""

    def __init__(self, direct: Any, client: Any) -> None:
        self.direct = direct
        self.script = DirectScript(direct, scripts.load(client, "limit_take"))

    def command(self, queue: str, consumer: str, jobs: Sequence[Gated],
                now_ms: int, level: int = 0) -> tuple[Any, ...]:
        """The gate of `jobs`, all read from the stream of `queue`'s priority `level` (their
        entry ids that stream's own, untagged: broker/levels.py)."""
        ids = sorted((job.entry_id for job in jobs), key=levels.stream_order)
        args: list[Any] = [keys.GROUP, consumer, now_ms, ids[0], ids[-1]]
        for job in jobs:
            args += (job.entry_id, job.job_id, job.slot, job.most, job.rate, job.per_period,
                     job.period_ms, job.burst, job.slot_message, job.rate_message)
        return self.script.args((keys.level_stream(queue, level), keys.delayed(queue),
                                 *keys.limit_keys(queue)), args)

    def admit(self, consumer: str, by_queue: dict[str, list[Gated]],
              now_ms: int) -> dict[str, list[Waited]]:
        """Admit or send to wait the jobs of each queue: {queue: the jobs sent to wait}.

        One call per queue and priority level: a job is acknowledged out of the
        stream it was read from."""
        by_stream: dict[tuple[str, int], list[Gated]] = {}
        for queue, jobs in by_queue.items():
            for job in jobs:
                level, entry_id = levels.untag(job.entry_id)
                by_stream.setdefault((queue, level), []).append(job._replace(entry_id=entry_id))
        streams = list(by_stream)
        commands = [self.command(queue, consumer, by_stream[queue, level], now_ms, level)
                    for queue, level in streams]
        replies = self.direct.call_many(commands)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # A restarted or flushed server forgot it; nothing ran for those queues.
            self.script.load()
            replies = self.direct.call_many(commands)
        raise_error_reply(replies)
        waited: dict[str, list[Waited]] = {}
        for (queue, level), reply in zip(streams, replies, strict=True):
            flat = list(reply or ())
            if flat:
                waited.setdefault(queue, []).extend(
                    Waited(levels.tag(level, str(flat[i])), str(flat[i + 1]), int(flat[i + 2]))
                    for i in range(0, len(flat), 3))
        return waited


class LimitCounts(NamedTuple):
    """What one limit of a queue has now: jobs waiting for a turn or a slot, slots held."""

    waiting_rate: int
    waiting_slot: int
    running: int


def limit_counts(client: Any, queue: str) -> dict[str, LimitCounts]:
    """Per limit name of the queue: its waiting and running counts (for `queues`, `status`)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.limit_waits(queue))
    pipe.hgetall(keys.limit_count(queue))
    return counts_of(*pipe.execute())


def counts_of(waits: dict[Any, Any] | None, held: dict[Any, Any] | None,
              ) -> dict[str, LimitCounts]:
    """limit_counts() from the queue's waits and count hashes as read."""
    names: dict[str, list[int]] = {}
    for field, value in (waits or {}).items():
        kind, _, name = str(field).partition(":")
        counts = names.setdefault(name, [0, 0, 0])
        counts[0 if kind == "rate" else 1] += max(0, int(value))
    for name, value in (held or {}).items():
        names.setdefault(str(name), [0, 0, 0])[2] = max(0, int(value))
    return {name: LimitCounts(*counts) for name, counts in sorted(names.items())}


def task_of(name: str) -> str:
    """The task of a limit name ("task" or "task[key]")."""
    return name.split("[", 1)[0]
