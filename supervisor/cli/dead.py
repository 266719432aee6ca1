"""`supervisor dead ...`: list, show, requeue and purge dead-lettered jobs."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from supervisor import errors
from supervisor.cli.app import (
    AsJson,
    RedisPasswordFile,
    RedisUrl,
    dead_app,
    emit_json,
    fail,
    redis_options,
    user_errors,
)
from supervisor.cli.text import printable
from supervisor.config import load_config

QueueOption = Annotated[str | None, typer.Option("--queue", "-q",
                                                 help="Only this queue [default: all queues]")]


def _client_and_queues(redis_url: str | None, redis_password_file: str | None,
                       queue: str | None) -> tuple[Any, list[str]]:
    from supervisor.api.producer import Producer
    from supervisor.broker.inspect import known_queues

    producer = Producer(load_config(redis_options(redis_url, redis_password_file)))
    return producer, [queue] if queue else known_queues(producer.client)


@dead_app.command("list")
@user_errors
def list_dead(queue: QueueOption = None, limit: Annotated[int, typer.Option(min=1)] = 100,
              as_json: AsJson = False, redis_url: RedisUrl = None,
              redis_password_file: RedisPasswordFile = None) -> None:
    """List dead letters, newest first.

    Example: supervisor dead list --queue default --json
    """
    from supervisor.broker.inspect import dead_letters

    producer, names = _client_and_queues(redis_url, redis_password_file, queue)
    letters = [letter for name in names for letter in dead_letters(producer.client, name, limit)]
    if as_json:
        from supervisor.api.deadletters import summary

        emit_json([summary(letter) for letter in letters])
        return
    if not letters:
        typer.echo("no dead letters" + (f" in queue {printable(queue)}" if queue else ""))
    for letter in letters:
        data = letter.data
        typer.echo(printable(f"{letter.job_id}  {letter.queue}  {data.get('task')}  "
                             f"{data.get('reason')}  {data.get('exc_type')}: "
                             f"{data.get('message')}"))


def _find(producer: Any, job_id: str, names: list[str]) -> Any:
    from supervisor.broker.inspect import find_dead

    letter = find_dead(producer.client, job_id, names)
    if letter is None:
        raise errors.JobNotFound(f"no dead letter for job {job_id!r}; see: supervisor dead list")
    return letter


@dead_app.command("show")
@user_errors
def show_dead(job_id: str, queue: QueueOption = None, as_json: Annotated[bool, typer.Option(
                  "--json", help="The dead letter as stored (JSON, the original message as a "
                                 "string).")] = False,
              redis_url: RedisUrl = None,
              redis_password_file: RedisPasswordFile = None) -> None:
    """Show one dead letter in full: why it failed, its arguments, the traceback.

    Example: supervisor dead show 3f2a...
    """
    producer, names = _client_and_queues(redis_url, redis_password_file, queue)
    data = _find(producer, job_id, names).data
    if as_json:
        emit_json(data)
        return
    for line in describe_letter(data):
        typer.echo(line)


def _when(at: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(at)))
    except (TypeError, ValueError):
        return "-"


def describe_letter(data: dict[str, Any]) -> list[str]:
    """A dead letter for reading: one field a line, the original message decoded."""
    fields: list[tuple[str, Any]] = [
        ("job", data.get("id")), ("task", data.get("task")), ("queue", data.get("queue")),
        ("reason", data.get("reason")),
        ("error", f"{data.get('exc_type')}: {data.get('message')}"),
        ("attempts", data.get("attempts")), ("created", _when(data.get("created"))),
        ("failed", _when(data.get("failed_at")))]
    from supervisor.api.deadletters import original_message

    message = original_message(data)
    if message is not None:
        fields += [("args", json.dumps(message.get("args", []))),
                   ("kwargs", json.dumps(message.get("kwargs", {}))),
                   ("enqueued", f"by {message.get('host') or '?'}")]
    else:
        fields.append(("message", f"{data.get('job')} (not a job message)"))
    lines = [printable(f"{name:<10} {value}") for name, value in fields]
    traceback = str(data.get("traceback") or "").rstrip()
    if traceback:
        lines.append("traceback:")
        lines += ["    " + line for line in printable(traceback, lines=True).splitlines()]
    return lines


@dead_app.command("requeue")
@user_errors
def requeue_dead(
    job_id: Annotated[str | None, typer.Argument(help="Job to run again.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
    queue: QueueOption = None,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Run dead jobs again as fresh first attempts (same job id).

    Example: supervisor dead requeue --all --queue reports
    """
    from supervisor.api.deadletters import requeue_letters
    from supervisor.broker.inspect import dead_letters

    if bool(job_id) == all_jobs:
        raise fail("give either a JOB_ID or --all", errors.EXIT_USAGE)
    producer, names = _client_and_queues(redis_url, redis_password_file, queue)
    letters = ([_find(producer, str(job_id), names)] if job_id else
               [letter for name in names for letter in dead_letters(producer.client, name)])
    report = requeue_letters(producer, letters)
    for which, why in report.skipped:
        typer.echo(printable(f"skipped {which}: its message cannot run ({why}); "
                             "purge it instead"), err=True)
    skipped = len(report.skipped)
    typer.echo(f"requeued {len(report.requeued)} job(s)"
               + (f", skipped {skipped}" if skipped else ""))
    if job_id and skipped:
        raise typer.Exit(errors.EXIT_USAGE)


@dead_app.command("purge")
@user_errors
def purge_dead(queue: QueueOption = None,
               yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when "
                                                 "not on a terminal).")] = False,
               redis_url: RedisUrl = None,
               redis_password_file: RedisPasswordFile = None) -> None:
    """Delete dead letters for good (asks first, on a terminal).

    Example: supervisor dead purge --queue default
    """
    from supervisor.broker.inspect import dead_count
    from supervisor.broker.inspect import purge_dead as purge

    producer, names = _client_and_queues(redis_url, redis_password_file, queue)
    if not yes:
        counts = {name: dead_count(producer.client, name) for name in names}
        if not sys.stdin.isatty():
            raise fail("not on a terminal: pass --yes to delete dead letters without asking",
                       errors.EXIT_USAGE)
        listed = ", ".join(f"{printable(name)}: {count}" for name, count in counts.items())
        total = sum(counts.values())
        if not typer.confirm(f"Delete {total} dead letters ({listed})?", default=False):
            typer.echo("nothing purged")
            raise typer.Exit(1)
    total = sum(purge(producer.client, name) for name in names)
    typer.echo(f"purged {total} dead letter(s)")
