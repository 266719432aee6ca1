"""Building enqueue.lua's calls: what a job to add is, its keys and arguments, chunking.

The one builder of the sync producer (broker/producing.py, part of Broker) and the async one
(broker/async_streams.py), so both write the same messages, records and locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from supervisor.broker import keys
from supervisor.core.priority import level_of


class EnqueueRequest(NamedTuple):
    queue: str
    job_id: str
    message: str
    record: str  # the job record (JSON) stored under sv:{q}:job:<id>
    due_ms: int = 0
    ttl: int = 86400
    force: bool = False
    unique: str = ""  # the digest of its unique lock ('' not unique): see enqueue.lua
    unique_ttl: int = 0  # seconds the lock lives


# What enqueue_many takes per job: an EnqueueRequest or a plain tuple of the
# same seven fields, or nine with a unique lock (a batch's producer makes plain
# ones: a NamedTuple costs a Python-level __new__ call, ~10x a tuple).
EnqueueFields = (tuple[str, str, str, str, int, int, bool]
                 | tuple[str, str, str, str, int, int, bool, str, int])


class Tick(NamedTuple):
    """One tick of a periodic schedule, for fire_tick (see enqueue.lua, mode 'tick')."""

    schedule: str  # the schedule's name
    tick: int  # epoch seconds of the tick instant
    marker_ttl: int  # seconds the tick's marker lives
    last_fire: str  # JSON of the schedule's last fire, stored if this call fires


QueueKeys = tuple[str, str, str, str]


def queue_keys(queue: str, level: int = 0) -> QueueKeys:
    """The stream (of priority `level`), delayed set and job record prefix of a queue, and
    for a level above 0 its levels set ('' for level 0: nothing to list)."""
    return (keys.level_stream(queue, level), keys.delayed(queue), keys.job_prefix(queue),
            keys.levels(queue) if level else "")


def enqueue_call(queue_names: QueueKeys, requests: Iterable[EnqueueFields],
                 now_ms: int) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of enqueue.lua (mode 'jobs') adding `requests`, all of the queue
    and priority level of `queue_names` (queue_keys()): the one builder of the sync and
    the async producer. Every job record is declared in KEYS (Redis Cluster routes the
    script by them and follows a migration); the levels set last, for a level above 0
    (the script lists the level in the step that adds its jobs: no round trip of its own)."""
    stream, delayed, prefix, levels_set = queue_names
    names: list[str] = [stream, delayed]
    args: list[Any] = ["jobs", now_ms]
    locks: list[str] = []  # the unique locks, declared after the records
    for request in requests:
        job_id = request[1]
        names.append(prefix + job_id)
        meta = f"{job_id} {request[4]} {request[5]} {'1' if request[6] else '0'}"
        if len(request) > 7 and request[7]:
            locks.append(keys.unique(request[0], request[7]))
            meta += f" {request[8]}"
        args += (meta, request[2], request[3])
    return names + locks + ([levels_set] if levels_set else []), args


def holder_of(flag: Any) -> str | None:
    """The id of the job holding the unique lock, from enqueue.lua's flag of a job that was
    not added because an equal job exists (None for 1 added and 0 duplicate id)."""
    return flag if isinstance(flag, str) else (flag.decode() if isinstance(flag, bytes)
                                               else None)


def enqueue_chunks(requests: Iterable[EnqueueFields], chunk: int = 500,
                   ) -> Iterator[tuple[tuple[str, int], list[EnqueueFields], list[int]]]:
    """((queue, priority level), requests, their positions) in chunks of at most `chunk`
    per queue and level, in the order they fill up (what enqueue_many sends, one script
    call each: a level is a stream of its own)."""
    pending: dict[tuple[str, int], tuple[list[EnqueueFields], list[int]]] = {}
    for index, request in enumerate(requests):
        where = (request[0], level_of(request[2]))
        batch = pending.setdefault(where, ([], []))
        batch[0].append(request)
        batch[1].append(index)
        if len(batch[0]) >= chunk:
            del pending[where]
            yield where, batch[0], batch[1]
    for where, (rest, positions) in pending.items():
        yield where, rest, positions
