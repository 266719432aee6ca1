"""The dashboard's actions: a registry of named operations, each run by one POST.

Every action is refused (403) unless the dashboard runs with --allow-actions,
and logged with who asked and what. Today: requeue one dead letter, requeue
all (filtered), purge; and job control (issue 16): cancel a job, retry a waiting
one now, pause and resume a
queue (the functions of api/control.py, which the CLI calls too). The pages
show a button for each action registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.api.deadletters import matches, requeue_letters
from supervisor.api.producer import Producer
from supervisor.broker.inspect import dead_letters, find_dead, known_queues, purge_dead


class ActionError(Exception):
    """Bad parameters (400) or nothing to act on (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Params = dict[str, str]
Runner = Callable[[Producer, Params], dict[str, Any]]


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # the button's text
    params: tuple[str, ...]  # what the form sends (all optional unless `required`)
    required: tuple[str, ...]
    run: Runner
    confirm: str = ""  # asked in the browser before a destructive action


ACTIONS: dict[str, Action] = {}


def action(name: str, label: str, params: tuple[str, ...] = (), required: tuple[str, ...] = (),
           confirm: str = "") -> Callable[[Runner], Runner]:
    def register(run: Runner) -> Runner:
        ACTIONS[name] = Action(name, label, params, required, run, confirm)
        return run

    return register


def perform(name: str, producer: Producer, params: Params) -> dict[str, Any]:
    """Run action `name`; ActionError for an unknown action or bad parameters."""
    found = ACTIONS.get(name)
    if found is None:
        raise ActionError(f"no action {name!r}", 404)
    given = {key: str(params[key]).strip() for key in found.params
             if params.get(key) not in (None, "")}
    missing = [key for key in found.required if key not in given]
    if missing:
        raise ActionError(f"action {name}: missing {', '.join(missing)}")
    return found.run(producer, given)


def _queues(producer: Producer, params: Params) -> list[str]:
    known = known_queues(producer.client)
    queue = params.get("queue")
    if queue and queue not in known:
        raise ActionError(f"no queue {queue!r}", 404)
    return [queue] if queue else known


@action("requeue", "Requeue", params=("job_id", "queue"), required=("job_id",))
def _requeue(producer: Producer, params: Params) -> dict[str, Any]:
    letter = find_dead(producer.client, params["job_id"], _queues(producer, params))
    if letter is None:
        raise ActionError(f"no dead letter for job {params['job_id']!r}", 404)
    report = requeue_letters(producer, [letter])
    if report.skipped:
        raise ActionError(f"job {params['job_id']}: its message cannot run "
                          f"({report.skipped[0][1]}); purge it instead")
    return {"requeued": report.requeued, "skipped": []}


@action("requeue_all", "Requeue all", params=("queue", "reason", "task"),
        confirm="Requeue every dead letter shown?")
def _requeue_all(producer: Producer, params: Params) -> dict[str, Any]:
    letters = [letter for queue in _queues(producer, params)
               for letter in dead_letters(producer.client, queue)
               if matches(letter, params.get("reason"), params.get("task"))]
    report = requeue_letters(producer, letters)
    return {"requeued": report.requeued,
            "skipped": [{"job": which, "why": why} for which, why in report.skipped]}


@action("purge", "Purge", params=("queue",), confirm="Delete these dead letters for good?")
def _purge(producer: Producer, params: Params) -> dict[str, Any]:
    return {"purged": sum(purge_dead(producer.client, queue)
                          for queue in _queues(producer, params))}


# --- job control (issue 16): the functions of api/control.py, which the CLI calls too ---


@action("cancel", "Cancel", params=("job_id", "queue"), required=("job_id",),
        confirm="Cancel this job?")
def _cancel(producer: Producer, params: Params) -> dict[str, Any]:
    from supervisor.api import control

    reply = control.cancel([params["job_id"]], by="dashboard", queue=params.get("queue"),
                           client=producer.client)[0]
    if reply.what == "unknown":
        raise ActionError(f"no job {params['job_id']!r}", 404)
    return {"job_id": reply.job_id, "queue": reply.queue, "result": reply.what,
            "state": reply.state}


@action("retry_now", "Retry now", params=("job_id", "queue"), required=("job_id",))
def _retry_now(producer: Producer, params: Params) -> dict[str, Any]:
    from supervisor.api import control

    if not control.retry_now(params["job_id"], queue=params.get("queue"),
                             client=producer.client):
        raise ActionError(f"job {params['job_id']!r} is not waiting for its time "
                          "(scheduled or retrying)", 404)
    return {"job_id": params["job_id"], "due": "now"}


@action("pause", "Pause", params=("queue",), required=("queue",))
def _pause(producer: Producer, params: Params) -> dict[str, Any]:
    from supervisor.api import control

    queue = _queues(producer, params)[0]
    control.pause(queue, by="dashboard", client=producer.client)
    return {"queue": queue, "paused": True}


@action("resume", "Resume", params=("queue",), required=("queue",))
def _resume(producer: Producer, params: Params) -> dict[str, Any]:
    from supervisor.api import control

    queue = _queues(producer, params)[0]
    return {"queue": queue, "paused": False,
            "was_paused": control.resume(queue, client=producer.client)}
