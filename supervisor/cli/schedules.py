"""`supervisor schedules`: every periodic schedule, its next fire and its last one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from supervisor import errors
from supervisor.cli.app import (
    AsJson,
    RedisPasswordFile,
    RedisUrl,
    app,
    emit_json,
    fail,
    redis_options,
    user_errors,
)
from supervisor.config import Config, load_config

if TYPE_CHECKING:
    from supervisor.core.schedule import Schedule


def _short(iso: str | None) -> str:
    return "-" if iso is None else iso.replace("T", " ")


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        typer.echo("no schedules (declare them with @periodic in --tasks modules, or as "
                   "[[schedule]] tables in --config)")
        return
    for row in rows:
        when = f"cron '{row['cron']}' {row['tz']}" if row["cron"] else f"every {row['every']}s"
        typer.echo(f"{row['name']}  [{when}, catch_up={row['catch_up']}]")
        typer.echo(f"  task   {row['task']} args={row['args']} kwargs={row['kwargs']} "
                   f"queue={row['queue']}  ({row['source']})")
        typer.echo(f"  next   {_short(row['next_fire_local'])}  "
                   f"(UTC {_short(row['next_fire_utc'])})")
        if row["last_job_id"] is None:
            typer.echo("  last   never fired")
        else:
            typer.echo(f"  last   {_short(row['last_fire_local'])}  "
                       f"(UTC {_short(row['last_fire_utc'])})  job {row['last_job_id']}  "
                       f"by {row['last_node']}")


def schedule_rows(config: Config, client: Any, schedules: list[Schedule],
                  now: float) -> list[dict[str, Any]]:
    """One row per schedule: definition, next fire (local and UTC), last fire and its job."""
    from supervisor.api.periodic import resolve
    from supervisor.broker.schedules import last_fires
    from supervisor.core.schedule import local_and_utc, next_fire, parse_last

    entries = [resolve(schedule, config, strict=False) for schedule in schedules]
    fires = last_fires(client, [(entry.queue, entry.schedule.name) for entry in entries])
    rows: list[dict[str, Any]] = []
    for entry, raw in zip(entries, fires, strict=True):
        schedule = entry.schedule
        last = parse_last(raw)
        upcoming = next_fire(schedule, now)
        row: dict[str, Any] = {
            "name": schedule.name, "task": schedule.task, "queue": entry.queue,
            "cron": schedule.cron, "every": schedule.every, "tz": schedule.tz,
            "args": list(schedule.args), "kwargs": schedule.kwargs,
            "catch_up": schedule.catch_up, "source": schedule.source,
            "next_fire_local": None, "next_fire_utc": None,
            "last_fire_local": None, "last_fire_utc": None, "last_job_id": None,
            "last_fired_at": None, "last_node": None,
        }
        if upcoming is not None:
            row["next_fire_local"], row["next_fire_utc"] = local_and_utc(upcoming, schedule.tz)
        if last is not None:
            row["last_fire_local"], row["last_fire_utc"] = local_and_utc(last["tick"],
                                                                        schedule.tz)
            row["last_job_id"] = last.get("job_id")
            row["last_fired_at"] = last.get("fired_at")
            row["last_node"] = last.get("node")
        rows.append(row)
    return rows


@app.command()
@user_errors
def schedules(
    as_json: AsJson = False,
    config: Annotated[str | None, typer.Option("--config", "-c", help="TOML config file "
                                               "([[schedule]] tables).")] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", "-t", help="Task modules with "
                                              "@periodic schedules, comma-separated.")] = None,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """List periodic schedules: next fire time (local and UTC), last fire and its job id.

    Exits 2 if a [[schedule]] entry of the config file is invalid (each is named),
    or, with --tasks, names a task those modules do not define.

    Example: supervisor schedules --tasks tasks.examples --config supervisor.toml
    """
    from supervisor.api.periodic import all_schedules
    from supervisor.api.registry import import_task_modules
    from supervisor.broker import keys
    from supervisor.broker.connection import connect
    from supervisor.worker.boot import schedule_problems

    settings = load_config({"config_file": config, "tasks": tasks,
                            **redis_options(redis_url, redis_password_file)})
    import_task_modules(settings.tasks)
    found, problems = all_schedules(settings.config_file)
    problems += schedule_problems(settings)  # with the task modules known: unknown tasks
    if problems:
        for problem in problems[:-1]:
            typer.echo(f"error: {problem}", err=True)
        raise fail(problems[-1], errors.EXIT_USAGE)
    keys.use_namespace(settings.namespace)
    rows = schedule_rows(settings, connect(settings.redis_url), found, time.time())
    if as_json:
        emit_json(rows)
    else:
        _print_table(rows)
