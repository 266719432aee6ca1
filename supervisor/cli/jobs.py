"""CLI commands for producers and inspection: enqueue, result, queues."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated, Any

import typer

from supervisor import errors
from supervisor.cli.app import (
    AsJson,
    JobQueue,
    RedisPasswordFile,
    RedisUrl,
    app,
    emit_json,
    fail,
    redis_options,
    user_errors,
)
from supervisor.cli.text import printable
from supervisor.config import load_config


def parse_arg(text: str) -> Any:
    """An ARG is JSON when it parses as JSON, else the string itself.

    NaN and Infinity are not JSON (Python's parser accepts them): strings.
    """
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _queue_of(task_name: str) -> str | None:
    """The queue a task declares, if its module imports from here (best effort)."""
    declared = _declared(task_name)
    return None if declared is None else declared.queue


def _declared(task_name: str) -> Any:
    """The registered task of that name, if its module imports from here (best effort)."""
    module = task_name.rpartition(".")[0]
    if not module:
        return None
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        importlib.import_module(module)
        from supervisor.api.registry import lookup

        return lookup(task_name)
    except Exception:  # noqa: BLE001 - producer side needs only the name
        return None


def _producer(redis_url: str | None, redis_password_file: str | None) -> Any:
    from supervisor.api.producer import Producer

    return Producer(load_config(redis_options(redis_url, redis_password_file)))


def _print_outcome(result: Any, wait: float, as_json: bool) -> None:
    from supervisor.errors import JobCancelled, TaskFailed

    try:
        value = result.get(timeout=wait)
    except JobCancelled as exc:
        if as_json:
            emit_json({"id": result.id, "state": "cancelled", "reason": exc.reason,
                       "by": exc.by or None, "at": exc.at})
        else:
            typer.echo(printable(str(exc)), err=True)
        raise typer.Exit(errors.EXIT_JOB_CANCELLED) from None
    except TaskFailed as exc:
        if as_json:
            emit_json({"id": result.id, "state": "failed", "reason": exc.reason,
                       "exc_type": exc.exc_type, "message": exc.message})
        else:
            typer.echo(printable(f"failed ({exc.reason}): {exc.exc_type}: {exc.message}"),
                       err=True)
        raise typer.Exit(errors.EXIT_JOB_FAILED) from None
    except TimeoutError:
        raise fail(f"job {result.id} did not finish within {wait}s (state {result.state}); "
                   f"check later with: supervisor result {result.id}",
                   errors.EXIT_TIMEOUT) from None
    if as_json:
        emit_json({"id": result.id, "state": "succeeded", "result": value})
    else:
        typer.echo(json.dumps(value))


@app.command()
@user_errors
def enqueue(
    task: Annotated[str, typer.Argument(help="Registered task name, e.g. tasks.examples.add")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Positional arguments: JSON when they parse as JSON, else strings.")] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help='JSON object, e.g. \'{"y": 2}\'')]
    = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q",
                                              help="Queue [default: the task's own, else "
                                                   "'default']")] = None,
    countdown: Annotated[float | None, typer.Option("--countdown", min=0,
                                                    help="Run no earlier than S seconds from now.")]
    = None,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Idempotency key: enqueued at "
                                               "most once while its record lives.")] = None,
    wait: Annotated[float | None, typer.Option("--wait", min=0,
                                               help="Wait up to S seconds and print the result.")]
    = None,
    header: Annotated[list[str] | None, typer.Option(
        "--header", "-H", help="A header NAME=VALUE for the job (repeatable).")] = None,
    expires: Annotated[float | None, typer.Option(
        "--expires",
        help="Cancel the job (reason 'expired') if it has not started S seconds after it "
             "is due.")] = None,
    priority: Annotated[int | None, typer.Option(
        "--priority", "-p", help="0-9, higher runs first [default: the task's own, else 0]")]
    = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Enqueue a job and print its id.

    Example: supervisor enqueue tasks.examples.add 4 5 --wait 10
    """
    keyword: dict[str, Any] = {}
    if kwargs is not None:
        try:
            keyword = json.loads(kwargs)
        except ValueError as exc:
            raise fail(f"--kwargs is not valid JSON ({exc}); give an object like "
                       "'{\"y\": 2}'", errors.EXIT_USAGE) from None
        if not isinstance(keyword, dict):
            raise fail("--kwargs must be a JSON object like '{\"y\": 2}'", errors.EXIT_USAGE)
    if job_id is not None:
        from supervisor.core.job import check_job_id

        try:
            check_job_id(job_id)
        except ValueError as exc:
            raise fail(f"--job-id: {exc}", errors.EXIT_USAGE) from None
    if expires is not None and not expires > 0:
        raise fail(f"--expires {expires:g}: give positive seconds, e.g. --expires 60",
                   errors.EXIT_USAGE)
    headers: dict[str, str] = {}
    for item in header or []:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise fail(f"--header {item!r}: give NAME=VALUE", errors.EXIT_USAGE)
        headers[name] = value
    if priority is not None:
        from supervisor.core.priority import check_priority

        try:
            check_priority(priority, "--priority")
        except ValueError as exc:
            raise fail(str(exc), errors.EXIT_USAGE) from None
    positional = tuple(parse_arg(arg) for arg in args or [])
    declared = _declared(task)
    chosen = queue or (declared.queue if declared is not None else None) or "default"
    if priority is None:
        priority = getattr(declared, "priority", 0) if declared is not None else 0
    result = _producer(redis_url, redis_password_file).submit_named(
        task, chosen, positional, keyword, countdown=countdown, job_id=job_id,
        headers=headers or None, expires=expires, priority=priority)
    if wait is None:
        if as_json:
            emit_json({"id": result.id, "queue": chosen})
        else:
            typer.echo(result.id)
        return
    if not as_json:
        typer.echo(result.id, err=True)
    _print_outcome(result, wait, as_json)


@app.command()
@user_errors
def result(
    job_id: Annotated[str, typer.Argument(help="The id printed by enqueue.")],
    wait: Annotated[float | None, typer.Option("--wait", min=0,
                                               help="Wait up to S seconds for the job to end.")]
    = None,
    queue: JobQueue = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Show a job's state, and its result or error.

    Example: supervisor result 3f2a... --wait 5
    """
    from supervisor.api.result import AsyncResult
    from supervisor.core.record import CANCELLED, FAILED, SUCCEEDED, JobRecord

    producer = _producer(redis_url, redis_password_file)
    handle: AsyncResult[Any] = AsyncResult(job_id, queue=queue, client=producer.client)
    record = JobRecord(handle.info())  # JobNotFound -> clear error
    if wait is not None:
        _print_outcome(handle, wait, as_json)
        return
    state = record.state
    if as_json:
        emit_json({"id": job_id, "queue": handle.queue, **record.data})
        if state == FAILED:
            raise typer.Exit(errors.EXIT_JOB_FAILED)
        return
    typer.echo(f"state: {printable(state)}")
    if state == SUCCEEDED:
        typer.echo(f"result: {json.dumps(record.result)}")
    elif record.has_error:
        typer.echo(printable(f"error ({record.reason}): {record.exc_type}: {record.message}"))
    elif state == CANCELLED:
        typer.echo(printable(str(record.job_cancelled(job_id))))
    if state == FAILED:
        raise typer.Exit(errors.EXIT_JOB_FAILED)
