"""A job's story, from its record: enqueued, each attempt, retries, final state.

Pure: takes the record `api.result.find_job` returns and gives a list of
events (for `supervisor job`). What the record does not keep is not
invented: the due time of a retry is known only for the retry still pending
(`due`); earlier retries show when they were scheduled (the end of the
failed attempt) and when the next attempt started.
"""

from __future__ import annotations

from typing import Any

from supervisor.core.consumer import ConsumerName
from supervisor.core.record import (
    CANCELLED,
    FINAL_STATES,
    RETRYING,
    SCHEDULED,
    SUCCEEDED,
    JobRecord,
)


def _where(worker: str) -> dict[str, Any]:
    name = ConsumerName.parse(worker) if worker else None
    if name is None:
        return {"worker": worker or None, "node": None, "pid": None}
    return {"worker": worker, "node": name.node, "pid": name.pid}


def timeline(record: JobRecord) -> list[dict[str, Any]]:
    """Events in time order, each with `at` (epoch seconds) and `event`."""
    events: list[dict[str, Any]] = []
    if record.created is not None:
        events.append({"at": record.created, "event": "enqueued",
                       "host": record.enqueued_by or None})
    for entry in record.attempts:
        where = _where(entry.worker)
        if entry.started is not None:
            events.append({"at": entry.started, "event": "started", "attempt": entry.number,
                           **where})
        ended: dict[str, Any] = {"at": entry.finished, "event": entry.outcome,
                                 "attempt": entry.number, **where}
        if entry.started is not None and entry.finished is not None:
            ended["duration"] = round(float(entry.finished) - float(entry.started), 6)
        ended.update(entry.failure_fields())
        if entry.data.get("limit"):  # sent to wait for a limit (reason: rate or concurrency)
            ended["limit"] = entry.data["limit"]
        events.append(ended)
    state = record.state
    if state in (RETRYING, SCHEDULED) and record.due is not None:
        events.append({"at": record.due, "event": "due", "attempt": record.attempt})
    asked = record.data.get("cancel_requested")
    if isinstance(asked, dict):  # asked while it ran: stopped, or it ended first
        events.append({"at": asked.get("at"), "event": "cancel requested",
                       "by": asked.get("by") or None})
    if record.worker:  # held by a worker right now
        events.append({"at": record.started_at, "event": "running",
                       "attempt": record.attempt, **_where(str(record.worker))})
    if state in FINAL_STATES:
        final: dict[str, Any] = {"at": record.finished_at, "event": state}
        if state == SUCCEEDED:
            final["result"] = record.result
        elif state == CANCELLED:
            info = record.cancel_info
            final.update(by=info.get("by") or None, reason=info.get("reason"))
        else:
            final.update(record.failure_fields())
        events.append(final)
    # A cancel's time comes from the asking host's clock: keep the order by time.
    events.sort(key=lambda event: float(event.get("at") or 0.0))
    return events
