"""Browsing recent jobs by queue, task and state without scanning the keyspace.

The index: per queue and state, a sorted set of job ids scored by when the
job reached that state (`sv:{q}:recent:<state>`, keys.recent), written by
settle.lua in the same step as the outcome (one ZADD per job) and trimmed
there to the newest RECENT_MAX (one ZREMRANGEBYRANK per batch and state).
States indexed: succeeded, failed, retrying, cancelled (keys.RECENT_STATES;
a job cancelled before it started is indexed by cancel.lua, one stopped by its
cancel or expired by settle.lua). Scheduled jobs need no index: the queue's
delayed set is one, ordered by due time.

A job that retried and then succeeded is in both sets; each row shows the
record's current state, and a filter by state keeps the jobs whose record
is in it now (for retrying: not finished yet). Ids whose record expired are
dropped. Reading costs at most RECENT_MAX ids per queue and state, and one
pipelined read of the records looked at, whatever the number of jobs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from supervisor.broker import keys
from supervisor.core.record import FINAL_STATES, RETRYING, SCHEDULED, JobRecord

RECENT_MAX = 1000  # ids kept per queue and state; settle.lua has the same number
BROWSABLE = (*keys.RECENT_STATES, SCHEDULED)
_CHUNK = 200  # records read per round trip while filtering


def _row(queue: str, record: JobRecord, at: float | None) -> dict[str, Any]:
    data = record.data
    return {"id": data.get("id"), "queue": queue, "task": record.task, "state": record.state,
            "at": at, "attempt": record.attempt, "created": record.created,
            "finished_at": record.finished_at, "exc_type": record.exc_type,
            "message": record.message}


def _wanted(record: JobRecord, state: str | None, task: str | None) -> bool:
    if task and record.task != task:
        return False
    if state is None:
        return True
    if state == RETRYING:
        return record.state not in FINAL_STATES
    return record.state == state


def _candidates(client: Any, queues: list[str], states: tuple[str, ...],
                depth: int) -> list[tuple[float, str, str]]:
    """(score ms, queue, id), newest first, each (queue, id) once."""
    pipe = client.pipeline(transaction=False)
    pairs = [(queue, state) for queue in queues for state in states]
    for queue, state in pairs:
        pipe.zrevrange(keys.recent(queue, state), 0, depth - 1, withscores=True)
    best: dict[tuple[str, str], float] = {}
    for (queue, _), members in zip(pairs, pipe.execute(), strict=True):
        for job_id, score in members:
            key = (queue, str(job_id))
            best[key] = max(best.get(key, 0.0), float(score))
    return sorted(((score, queue, job_id) for (queue, job_id), score in best.items()),
                  reverse=True)


def recent_jobs(client: Any, queues: list[str], state: str | None = None,
                task: str | None = None, limit: int = 50,
                now: float | None = None) -> list[dict[str, Any]]:
    """The newest jobs of `queues` in `state` (None: any indexed one) of `task` (None: any).

    ValueError for a state that cannot be browsed.
    """
    now = time.time() if now is None else now
    if state is not None and state not in BROWSABLE:
        raise ValueError(f"cannot browse jobs by state {state!r}; one of "
                         f"{', '.join(BROWSABLE)}")
    if state == SCHEDULED:
        return scheduled_jobs(client, queues, task, limit, now)
    states = (state,) if state else keys.RECENT_STATES
    # Unfiltered, the newest `limit` of each set suffice (a few may be dropped
    # as expired or moved on); filtered, the whole bounded set is looked at.
    depth = RECENT_MAX if (task or state) else limit * 2
    found: list[dict[str, Any]] = []
    candidates = _candidates(client, queues, states, depth)
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start:start + _CHUNK]
        pipe = client.pipeline(transaction=False)
        for _, queue, job_id in chunk:
            pipe.get(keys.job(queue, job_id))
            pipe.hget(keys.running(queue), job_id)
        replies = pipe.execute()
        for index, (score, queue, _) in enumerate(chunk):
            raw, holder = replies[2 * index], replies[2 * index + 1]
            if not raw:
                continue
            try:
                record = JobRecord.read(raw, holder, now)
            except ValueError:
                continue
            if _wanted(record, state, task):
                found.append(_row(queue, record, score / 1000))
                if len(found) >= limit:
                    return found
    return found


def scheduled_jobs(client: Any, queues: list[str], task: str | None, limit: int,
                   now: float) -> list[dict[str, Any]]:
    """Jobs waiting in the delayed sets (scheduled, or a retry's next attempt), soonest first."""
    rows: list[dict[str, Any]] = []
    depth = RECENT_MAX if task else limit
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zrange(keys.delayed(queue), 0, depth - 1, withscores=True)
    for queue, members in zip(queues, pipe.execute(), strict=True):
        for message, score in members:
            try:
                job = json.loads(message)
            except ValueError:
                continue
            if not isinstance(job, dict) or (task and job.get("task") != task):
                continue
            rows.append({"id": job.get("id"), "queue": queue, "task": job.get("task"),
                         "state": SCHEDULED, "at": float(score) / 1000,
                         "attempt": job.get("attempt", 1), "created": job.get("created"),
                         "finished_at": None, "exc_type": None, "message": None})
    rows.sort(key=lambda row: row["at"])
    return rows[:limit]
