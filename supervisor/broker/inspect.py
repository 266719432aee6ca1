"""Read-only views: queue depths, job records, dead letters."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from supervisor.broker import keys, levels
from supervisor.broker.limits import LimitCounts, counts_of, task_of
from supervisor.errors import AmbiguousJob


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    running: int
    scheduled: int
    dead: int
    paused: bool = False  # `supervisor queues pause`: workers take none of its jobs
    chords: int = 0  # workflows' chords open in the queue (members still to end)
    # Workflows whose first job is of this queue (their tree lives here), still on record
    # (the result TTL): running, or finished, succeeded or failed (a branch stopped).
    workflows_running: int = 0
    workflows_succeeded: int = 0
    workflows_failed: int = 0
    # Per task: jobs waiting in Redis for a rate limit's turn or a concurrency slot
    # (broker/limits.py); absent tasks have none waiting.
    limited: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.limited:  # only queues with limited tasks carry it
            del data["limited"]
        return data


def known_queues(client: redis.Redis) -> list[str]:
    return sorted(str(name) for name in client.smembers(keys.QUEUES))  # type: ignore[union-attr]


def queue_stats(client: redis.Redis, queue: str) -> QueueStats:
    """Waiting = in the streams (every priority level), not delivered; running =
    delivered, not acknowledged."""
    streams = levels.streams(queue, levels.read_levels(client, queue))
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    pipe.zcard(keys.delayed(queue))
    pipe.xlen(keys.dead(queue))
    pipe.exists(keys.paused(queue))
    now_ms = int(time.time() * 1000)
    pipe.zcount(keys.chords(queue), now_ms, "+inf")
    for state in keys.WORKFLOW_STATES:  # O(log n) each: entries past their expiry not counted
        pipe.zcount(keys.workflows(queue, state), now_ms, "+inf")
    pipe.hgetall(keys.limit_waits(queue))
    pipe.hgetall(keys.limit_count(queue))
    *lengths, scheduled, dead, paused, chords, running_flows, succeeded, failed, waits, held = \
        pipe.execute()
    running = 0
    for stream in streams:
        try:
            for group in client.xinfo_groups(stream):  # type: ignore[union-attr]
                if group.get("name") == keys.GROUP:
                    running += int(group.get("pending", 0))
        except redis.exceptions.ResponseError:  # no stream yet
            pass
    # Acknowledged entries are deleted, so the streams hold waiting + running.
    return QueueStats(queue, max(0, sum(int(n) for n in lengths) - running), running,
                      int(scheduled), int(dead), bool(paused), int(chords),
                      int(running_flows), int(succeeded), int(failed),
                      by_task(counts_of(waits, held)))


def by_task(counts: dict[str, LimitCounts]) -> dict[str, dict[str, int]]:
    """Per task: jobs waiting for a rate turn, for a concurrency slot, and slots held (the
    counts of its limits added up, one per limit_key value)."""
    tasks: dict[str, dict[str, int]] = {}
    for name, limit in counts.items():
        row = tasks.setdefault(task_of(name), {"rate": 0, "concurrency": 0, "slots_held": 0})
        row["rate"] += limit.waiting_rate
        row["concurrency"] += limit.waiting_slot
        row["slots_held"] += limit.running
    return tasks


def read_job(client: Any, job_id: str, queue: str | None = None,
             ) -> tuple[str, str, str | None] | None:
    """(queue, record JSON, holder or None) of `job_id`; every known queue if none is given.

    The holder is the job's entry in the queue's running hash ("worker started-at").
    Raises AmbiguousJob when no queue is given and several queues hold the id.
    """
    queues: list[str] = [queue] if queue else sorted(client.smembers(keys.QUEUES))
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.get(keys.job(name, job_id))
        pipe.hget(keys.running(name), job_id)
    replies = pipe.execute()
    found = [(name, replies[2 * index], replies[2 * index + 1])
             for index, name in enumerate(queues) if replies[2 * index]]
    if len(found) > 1:
        # Only an explicit job id reused in several queues gets here (generated ids
        # are unique): answering with one of them would show the wrong job.
        raise AmbiguousJob(f"job {job_id!r} exists in queues "
                           f"{', '.join(name for name, _, _ in found)}; pass --queue to say which")
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    queue: str
    data: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.data.get("id", ""))


def _decode(queue: str, entry_id: str, fields: dict[str, str]) -> DeadLetter:
    try:
        data = json.loads(fields.get(keys.MESSAGE_FIELD, "{}"))
    except ValueError:
        data = {"id": "", "reason": "invalid", "message": "unreadable dead letter"}
    return DeadLetter(entry_id, queue, data if isinstance(data, dict) else {})


def dead_letters(client: redis.Redis, queue: str, count: int | None = None) -> list[DeadLetter]:
    """Newest first."""
    entries: Any = client.xrevrange(keys.dead(queue), count=count)
    return [_decode(queue, entry_id, fields) for entry_id, fields in entries]


def find_dead(client: redis.Redis, job_id: str, queues: list[str]) -> DeadLetter | None:
    for queue in queues:
        for letter in dead_letters(client, queue):
            if letter.job_id == job_id:
                return letter
    return None


def find_dead_near(client: redis.Redis, job_id: str, queue: str, at: float,
                   window: float = 120.0) -> DeadLetter | None:
    """The job's dead letter, looked for only among those written within `window` seconds
    of `at` (its record's finished_at): a dead letter's entry id is the time it was
    written, so this reads a few entries where find_dead may read the whole stream."""
    low, high = int((at - window) * 1000), int((at + window) * 1000)
    entries: Any = client.xrange(keys.dead(queue), min=f"{max(0, low)}-0", max=f"{high}-0")
    for entry_id, fields in entries:
        letter = _decode(queue, entry_id, fields)
        if letter.job_id == job_id:
            return letter
    return None


def delete_dead(client: redis.Redis, letter: DeadLetter) -> None:
    client.xdel(keys.dead(letter.queue), letter.entry_id)


def dead_count(client: redis.Redis, queue: str) -> int:
    return int(client.xlen(keys.dead(queue)))  # type: ignore[arg-type]


def purge_dead(client: redis.Redis, queue: str) -> int:
    count = dead_count(client, queue)
    client.delete(keys.dead(queue))
    return count
