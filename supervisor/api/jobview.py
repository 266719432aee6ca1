"""One job as a document: `supervisor job --json` and the dashboard's job page.

The record keeps the story (core/timeline.py) and the arguments, cut to a
preview past core/record.ARGS_PREVIEW_CHARS (`args_preview`, `args_chars`);
a failed job's dead letter, when at hand, gives them whole.
"""

from __future__ import annotations

from typing import Any

from supervisor.api.deadletters import original_message
from supervisor.api.result import find_job, read_progress
from supervisor.api.workflowview import find_tree, read_tree
from supervisor.broker.inspect import find_dead, find_dead_near
from supervisor.core.record import FAILED, JobRecord
from supervisor.core.timeline import timeline
from supervisor.errors import JobNotFound


def job_document(client: Any, job_id: str, queue: str | None = None) -> dict[str, Any]:
    """What `supervisor job --json` prints (JobNotFound when no record exists,
    AmbiguousJob when `queue` is None and several queues hold the id). The id of a
    whole workflow gives workflow_document()."""
    try:
        found, record = find_job(client, job_id, queue)
    except JobNotFound as missing:
        return _workflow_instead(client, job_id, queue, missing)
    doc = _document(job_id, found, record)
    doc["progress"] = read_progress(client, found, job_id, record)
    doc["workflow"] = _workflow(client, record)
    return doc


def workflow_document(client: Any, workflow_id: str, queue: str | None = None,
                      ) -> dict[str, Any] | None:
    """The document of a whole workflow by its id (a handle's `workflow_id`, a group's
    `.id`: then its workflow's): the fields of a job's, `kind` "workflow", its state
    (running, succeeded, failed) and its tree under `workflow` (whose `id` is the
    workflow's), as a member's document has it; None when no queue keeps its tree."""
    found = find_tree(client, workflow_id, queue)
    tree = read_tree(client, {"id": found[1], "queue": found[0]}) if found else None
    if found is None or tree is None:
        return None
    return {"id": workflow_id, "kind": "workflow", "task": None, "queue": found[0],
            "state": tree["state"], "attempts": 0, "headers": {}, "args": None,
            "kwargs": None, "args_preview": None, "args_chars": None, "events": [],
            "progress": None, "workflow": tree}


def _workflow_instead(client: Any, job_id: str, queue: str | None,
                      missing: JobNotFound) -> dict[str, Any]:
    """The document of the workflow whose id `job_id` is; `missing` (no job of that id)
    raised when no workflow has it either."""
    doc = workflow_document(client, job_id, queue)
    if doc is None:
        raise missing
    return doc


def _workflow(client: Any, record: JobRecord) -> dict[str, Any] | None:
    """The tree of the workflow the job belongs to, with each member's state (None for a
    plain job, or when the tree expired)."""
    named = record.data.get("workflow")
    return read_tree(client, named) if isinstance(named, dict) else None


def _document(job_id: str, queue: str, record: JobRecord) -> dict[str, Any]:
    return {"id": job_id, "kind": "job", "task": record.task, "queue": queue, "state": record.state,
            "attempts": len(record.attempts), "headers": record.headers,
            **_arguments(record), "events": timeline(record)}


def _arguments(record: JobRecord) -> dict[str, Any]:
    """args and kwargs as the record keeps them (None in a record written before it kept
    them), and the preview when they were too long to keep whole."""
    data = record.data
    args = data.get("args")
    return {"args": args, "kwargs": data.get("kwargs"),
            "args_preview": data.get("args_preview"), "args_chars": data.get("args_chars")}


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
    progress (None if it reported none) and workflow (its tree with each member's state,
    None for a plain job)."""
    try:
        queue, record = find_job(client, job_id, queue)
    except JobNotFound as missing:
        flow = _workflow_instead(client, job_id, queue, missing)
        return {**flow, "result": None, "exc_type": None, "message": None, "reason": None,
                "traceback": None, "created": None, "finished_at": None,
                "enqueued_by": None, "dead_letter": False}
    doc = _document(job_id, queue, record)
    data = record.data
    doc.update(result=record.result, exc_type=record.exc_type, message=record.message,
               reason=record.reason, traceback=data.get("traceback"),
               created=record.created, finished_at=record.finished_at,
               enqueued_by=record.enqueued_by, dead_letter=False,
               progress=read_progress(client, queue, job_id, record),
               workflow=_workflow(client, record))
    if record.state == FAILED:
        letter = dead_letter_of(client, job_id, queue, record)
        if letter is not None:
            doc["dead_letter"] = True
            doc["traceback"] = doc["traceback"] or letter.data.get("traceback")
            message = original_message(letter.data)
            if message is not None:
                doc["args"], doc["kwargs"] = message.get("args"), message.get("kwargs")
                doc["args_preview"] = doc["args_chars"] = None  # the letter has them whole
    return doc
