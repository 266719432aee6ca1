"""Read-only views: queue depths, job records, dead letters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from supervisor.broker import keys
from supervisor.errors import AmbiguousJob


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    running: int
    scheduled: int
    dead: int
    paused: bool = False  # `supervisor queues pause`: workers take none of its jobs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def known_queues(client: redis.Redis) -> list[str]:
    return sorted(str(name) for name in client.smembers(keys.QUEUES))  # type: ignore[union-attr]


def queue_stats(client: redis.Redis, queue: str) -> QueueStats:
    """Waiting = in the stream, not delivered; running = delivered, not acknowledged."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.stream(queue))
    pipe.zcard(keys.delayed(queue))
    pipe.xlen(keys.dead(queue))
    pipe.exists(keys.paused(queue))
    length, scheduled, dead, paused = pipe.execute()
    running = 0
    try:
        for group in client.xinfo_groups(keys.stream(queue)):
            if group.get("name") == keys.GROUP:
                running = int(group.get("pending", 0))
    except redis.exceptions.ResponseError:  # no stream yet
        pass
    # Acknowledged entries are deleted, so the stream holds waiting + running.
    return QueueStats(queue, max(0, int(length) - running), running, int(scheduled), int(dead),
                      bool(paused))


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
