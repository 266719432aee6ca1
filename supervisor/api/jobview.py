"""One job as a document: `supervisor job --json` and the dashboard's job page.

The record keeps the story (core/timeline.py) but not the arguments; those
are shown when the job's message is still at hand: its dead letter.
"""

from __future__ import annotations

from typing import Any

from supervisor.api.deadletters import original_message
from supervisor.api.result import find_job, read_progress
from supervisor.broker.inspect import find_dead, find_dead_near
from supervisor.core.record import FAILED, JobRecord
from supervisor.core.timeline import timeline


def job_document(client: Any, job_id: str, queue: str | None = None) -> dict[str, Any]:
    """What `supervisor job --json` prints (JobNotFound when no record exists,
    AmbiguousJob when `queue` is None and several queues hold the id)."""
    found, record = find_job(client, job_id, queue)
    doc = _document(job_id, found, record)
    doc["progress"] = read_progress(client, found, job_id, record)
    return doc


def _document(job_id: str, queue: str, record: JobRecord) -> dict[str, Any]:
    return {"id": job_id, "task": record.task, "queue": queue, "state": record.state,
            "attempts": len(record.attempts), "headers": record.headers,
            "events": timeline(record)}


def dead_letter_of(client: Any, job_id: str, queue: str, record: JobRecord) -> Any:
    """The failed job's dead letter: near its finish time first (a few entries read),
    else anywhere in the queue's dead stream."""
    if record.finished_at is not None:
        letter = find_dead_near(client, job_id, queue, float(record.finished_at))
        if letter is not None:
            return letter
    return find_dead(client, job_id, [queue])


def job_details(client: Any, job_id: str, queue: str | None = None) -> dict[str, Any]:
    """`job_document` and more: result or error with its traceback, arguments when known,
    progress (None if it reported none) and workflow (None until issue 18)."""
    queue, record = find_job(client, job_id, queue)
    doc = _document(job_id, queue, record)
    data = record.data
    doc.update(result=record.result, exc_type=record.exc_type, message=record.message,
               reason=record.reason, traceback=data.get("traceback"),
               created=record.created, finished_at=record.finished_at,
               enqueued_by=record.enqueued_by, args=None, kwargs=None, dead_letter=False,
               progress=read_progress(client, queue, job_id, record),
               workflow=data.get("workflow"))
    if record.state == FAILED:
        letter = dead_letter_of(client, job_id, queue, record)
        if letter is not None:
            doc["dead_letter"] = True
            doc["traceback"] = doc["traceback"] or letter.data.get("traceback")
            message = original_message(letter.data)
            if message is not None:
                doc["args"], doc["kwargs"] = message.get("args"), message.get("kwargs")
    return doc
