"""`supervisor run`: the master with its prefork pool (see master.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from supervisor.cli import RedisUrl, app, user_errors
from supervisor.config import Config, load_config


@app.command()
@user_errors
def run(
    workers: Annotated[int | None, typer.Option("--workers", "-w",
                                                help="Child processes [default: CPU count]")]
    = None,
    tasks: Annotated[str | None, typer.Option("--tasks", "-t",
                                              help="Task modules, comma-separated.")] = None,
    queues: Annotated[str | None, typer.Option("--queues", "-Q",
                                               help="Queues to consume, comma-separated.")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
    node_name: Annotated[str | None, typer.Option("--node-name",
                                                  help="[default: the host name]")] = None,
    graceful_timeout: Annotated[float | None, typer.Option("--graceful-timeout")] = None,
    max_jobs_per_child: Annotated[int | None, typer.Option("--max-jobs-per-child")] = None,
    max_memory_per_child: Annotated[int | None, typer.Option("--max-memory-per-child",
                                                             help="MB of RSS")] = None,
    heartbeat_timeout: Annotated[float | None, typer.Option("--heartbeat-timeout")] = None,
    max_crashes: Annotated[int | None, typer.Option("--max-crashes")] = None,
    pidfile: Annotated[str | None, typer.Option("--pidfile")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json")] = None,
    log_file: Annotated[str | None, typer.Option("--log-file")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="Serve Prometheus /metrics on this port [default: off]")] = None,
    metrics_bind: Annotated[str | None, typer.Option(
        "--metrics-bind", help="Address for /metrics [default: 127.0.0.1]")] = None,
    redis_url: RedisUrl = None,
) -> None:
    """Run the master: fork --workers children and supervise them.

    Signals: TERM graceful stop, INT/QUIT quick stop, HUP reload,
    TTIN/TTOU one worker more/fewer, USR1 reopen logs.

    Example: supervisor run --workers 4 --tasks tasks.examples --queues default,reports
    """
    cli = {"workers": workers, "tasks": tasks, "queues": queues, "config_file": config,
           "node_name": node_name, "graceful_timeout": graceful_timeout,
           "max_jobs_per_child": max_jobs_per_child, "max_memory_per_child": max_memory_per_child,
           "heartbeat_timeout": heartbeat_timeout, "max_crashes": max_crashes, "pidfile": pidfile,
           "log_level": log_level, "log_format": log_format, "log_file": log_file,
           "metrics_port": metrics_port, "metrics_bind": metrics_bind, "redis_url": redis_url}

    def load() -> Config:
        # Re-read on HUP: the file and environment may have changed; CLI values stay.
        return load_config(cli)

    first = load()  # refuse bad values now, with the option named
    if not first.tasks:
        typer.echo("error: no task modules given: pass --tasks MODULE (or SUPERVISOR_TASKS)",
                   err=True)
        raise typer.Exit(2)
    from supervisor.logs import setup_logging
    from supervisor.serve import run_master

    setup_logging(first.log_level, first.log_format, first.log_file, first.node_name)
    raise typer.Exit(run_master(load))
