"""`supervisor worker`: one worker in the foreground, without a master."""

from __future__ import annotations

from typing import Annotated

import typer

from supervisor import errors
from supervisor.cli.app import RedisUrl, app, fail, user_errors
from supervisor.config import load_config


@app.command()
@user_errors
def worker(
    tasks: Annotated[str | None, typer.Option("--tasks", "-t", help="Task modules, comma-separated "
                                              "(imported from the current directory).")] = None,
    queues: Annotated[str | None, typer.Option("--queues", "-Q",
                                               help="Queues to consume, comma-separated.")] = None,
    node_name: Annotated[str | None, typer.Option("--node-name")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json")] = None,
    redis_url: RedisUrl = None,
) -> None:
    """Run one worker in the foreground (TERM: finish the current job and exit).

    Example: supervisor worker --tasks tasks.examples --queues default,reports
    """
    from supervisor.api.registry import import_task_modules
    from supervisor.logs import setup_logging
    from supervisor.worker.loop import Worker

    settings = load_config({"tasks": tasks, "queues": queues, "node_name": node_name,
                            "config_file": config, "log_level": log_level,
                            "log_format": log_format, "redis_url": redis_url})
    if not settings.tasks:
        raise fail("no task modules given: pass --tasks MODULE (or SUPERVISOR_TASKS)",
                   errors.EXIT_USAGE)
    setup_logging(settings.log_level, settings.log_format, settings.log_file, settings.node_name)
    import_task_modules(settings.tasks)
    consumer = Worker(settings)
    consumer.install_signals()
    code = consumer.run()
    raise typer.Exit(code)
