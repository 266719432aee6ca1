"""A job's story, from its record: enqueued, each attempt, retries, final state.

Pure: takes the record `result.find_job` returns and gives a list of events
(for `supervisor job`). What the record does not keep is not invented: the
due time of a retry is known only for the retry still pending (`due`);
earlier retries show when they were scheduled (the end of the failed
attempt) and when the next attempt started.
"""

from __future__ import annotations

from typing import Any

from supervisor.worker.recovery import ConsumerName


def _where(worker: str) -> dict[str, Any]:
    name = ConsumerName.parse(worker) if worker else None
    if name is None:
        return {"worker": worker or None, "node": None, "pid": None}
    return {"worker": worker, "node": name.node, "pid": name.pid}


def timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Events in time order, each with `at` (epoch seconds) and `event`."""
    events: list[dict[str, Any]] = []
    if record.get("created") is not None:
        events.append({"at": record["created"], "event": "enqueued",
                       "host": record.get("enqueued_by") or None})
    for entry in record.get("attempts") or []:
        number = entry.get("attempt")
        where = _where(str(entry.get("worker") or ""))
        if entry.get("started") is not None:
            events.append({"at": entry["started"], "event": "started", "attempt": number,
                           **where})
        ended: dict[str, Any] = {"at": entry.get("finished"), "event": entry.get("outcome"),
                                 "attempt": number, **where}
        if entry.get("started") is not None and entry.get("finished") is not None:
            ended["duration"] = round(float(entry["finished"]) - float(entry["started"]), 6)
        for field in ("exc_type", "message", "reason"):
            if entry.get(field):
                ended[field] = entry[field]
        events.append(ended)
    state = record.get("state")
    if state in ("retrying", "scheduled") and record.get("due") is not None:
        events.append({"at": record["due"], "event": "due", "attempt": record.get("attempt")})
    if record.get("worker"):  # held by a worker right now
        events.append({"at": record.get("started_at"), "event": "running",
                       "attempt": record.get("attempt"), **_where(str(record["worker"]))})
    if state in ("succeeded", "failed"):
        final: dict[str, Any] = {"at": record.get("finished_at"), "event": state}
        if state == "succeeded":
            final["result"] = record.get("result")
        else:
            for field in ("exc_type", "message", "reason"):
                if record.get(field):
                    final[field] = record[field]
        events.append(final)
    return events
