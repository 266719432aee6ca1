"""What the pages and the JSON API show, read from Redis (no HTML here).

Every document reuses the CLI's readers, so `/api/status` is `status --json`
and `/api/jobs/<id>` holds what `job --json` prints.
"""

from __future__ import annotations

import time
from typing import Any

from supervisor.api.deadletters import matches, original_message, summary
from supervisor.api.jobview import dead_letter_of, job_details
from supervisor.api.result import find_job
from supervisor.api.schedview import published_schedules, schedule_rows
from supervisor.api.statusview import status_document
from supervisor.broker import keys
from supervisor.broker.inspect import dead_letters, find_dead, known_queues
from supervisor.broker.nodes import RATE_WINDOW, cluster_status
from supervisor.broker.recent import BROWSABLE, recent_jobs
from supervisor.config import Config
from supervisor.core.record import FAILED
from supervisor.errors import JobNotFound

__all__ = ["known_queues"]  # the pages list the queues in their filters
CHART_BARS = 12  # bars of the jobs/s chart over RATE_WINDOW seconds
DEAD_SCAN = 1000  # newest dead letters per queue a filtered list looks through


def throughput(client: Any, queues: list[str], now: float) -> dict[str, list[float]]:
    """Per queue, jobs/s in CHART_BARS equal slices of the last RATE_WINDOW seconds
    (oldest first), from the same per-second buckets as `status`'s jobs/s."""
    end = int(now)
    seconds = list(range(end - RATE_WINDOW, end))
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.mget([keys.done_bucket(queue, second) for second in seconds])
    width = RATE_WINDOW // CHART_BARS
    series: dict[str, list[float]] = {}
    for queue, values in zip(queues, pipe.execute(), strict=True):
        counts = [int(value) if value else 0 for value in values]
        series[queue] = [round(sum(counts[i:i + width]) / width, 3)
                         for i in range(0, RATE_WINDOW, width)]
    return series


def overview(client: Any, url: str = "", now: float | None = None) -> dict[str, Any]:
    """`status --json`, plus totals and the jobs/s series (`paused` per queue comes with
    the status document's queue rows)."""
    now = time.time() if now is None else now
    doc = status_document(client, url, now)
    for row in doc["queues"]:
        row.setdefault("paused", None)
    doc["throughput"] = throughput(client, [row["queue"] for row in doc["queues"]], now)
    nodes = doc["nodes"]
    doc["totals"] = {
        "nodes": len(nodes), "alive": sum(1 for node in nodes if node["status"] == "alive"),
        "workers_live": sum(int(node.get("workers_live", 0)) for node in nodes),
        "workers_target": sum(int(node.get("workers_target", 0)) for node in nodes),
        **{name: sum(int(row[name]) for row in doc["queues"])
           for name in ("waiting", "running", "scheduled", "dead")},
        "jobs_per_second": round(sum(row["jobs_per_second"] for row in doc["queues"]), 3),
    }
    return doc


def workers(client: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Every worker of every node, with its node's name and status."""
    doc = cluster_status(client, now)
    return [{**worker, "node": node["node"], "node_status": node["status"]}
            for node in doc["nodes"] for worker in node.get("workers", [])]


def job(client: Any, job_id: str, queue: str | None = None) -> dict[str, Any]:
    """One job (JobNotFound when unknown, AmbiguousJob when several queues hold the id
    and `queue` is None)."""
    return job_details(client, job_id, queue)


def jobs(client: Any, queue: str | None, state: str | None, task: str | None,
         limit: int) -> list[dict[str, Any]]:
    """Recent jobs (broker/recent.py); ValueError for a state that cannot be browsed."""
    queues = [queue] if queue else known_queues(client)
    return recent_jobs(client, queues, state or None, task or None, limit)


STATES = BROWSABLE


def dead(client: Any, queue: str | None, reason: str | None, task: str | None,
         limit: int) -> list[dict[str, Any]]:
    """Dead letters newest first, filtered; rows as `dead list --json` prints them."""
    queues = [queue] if queue else known_queues(client)
    filtered = bool(reason or task)
    rows: list[dict[str, Any]] = []
    for name in queues:
        for letter in dead_letters(client, name, DEAD_SCAN if filtered else limit):
            if matches(letter, reason, task):
                rows.append({**summary(letter), "queue": name})
    rows.sort(key=lambda row: float(row.get("failed_at") or 0), reverse=True)
    return rows[:limit]


def dead_letter(client: Any, job_id: str, queue: str | None = None) -> dict[str, Any]:
    """One dead letter in full, its message decoded (JobNotFound when there is none)."""
    letter = None
    try:
        queue, record = find_job(client, job_id, queue)
        if record.state == FAILED:  # else it was requeued (or never died): no letter
            letter = dead_letter_of(client, job_id, queue, record)
    except JobNotFound:  # the record expired before the letter: look everywhere
        letter = find_dead(client, job_id, [queue] if queue else known_queues(client))
    if letter is None:
        raise JobNotFound(f"no dead letter for job {job_id!r}")
    message = original_message(letter.data) or {}
    return {**letter.data, "queue": letter.queue, "args": message.get("args"),
            "kwargs": message.get("kwargs"), "enqueued_by": message.get("host")}


def schedules(config: Config, client: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Every schedule the cluster's workers published, with next and last fire."""
    now = time.time() if now is None else now
    return schedule_rows(config, client, published_schedules(client, [], now), now)
