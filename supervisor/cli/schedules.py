"""`supervisor schedules`: every periodic schedule, its next fire and its last one."""

from __future__ import annotations

import time
from typing import Annotated, Any

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
from supervisor.config import load_config


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

    Lists those the workers of the cluster run (they publish them) as well as those
    of --tasks and --config.

    Exits 2 if a [[schedule]] entry of the config file is invalid (each is named),
    or, with --tasks, names a task those modules do not define.

    Example: supervisor schedules --tasks tasks.examples --config supervisor.toml
    """
    from supervisor.api.periodic import all_schedules
    from supervisor.api.task_modules import import_task_modules
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
    from supervisor.api.schedview import published_schedules, schedule_rows

    client, now = connect(settings.redis_url), time.time()
    rows = schedule_rows(settings, client, found + published_schedules(client, found, now), now)
    if as_json:
        emit_json(rows)
    else:
        _print_table(rows)
