"""`supervisor worker`: one worker in the foreground, without a master."""

from __future__ import annotations

import os

import typer

from supervisor import errors
from supervisor.cli.app import (
    CancelGraceOption,
    ConcurrencyOption,
    ConfigOption,
    LogFormatOption,
    LogLevelOption,
    MiddlewareOption,
    NodeNameOption,
    QueuesOption,
    RedisCaFile,
    RedisCertFile,
    RedisKeyFile,
    RedisPasswordFile,
    RedisUrl,
    TasksOption,
    app,
    fail,
    redis_options,
    user_errors,
)
from supervisor.config import load_config


@app.command()
@user_errors
def worker(
    tasks: TasksOption = None,
    queues: QueuesOption = None,
    middleware: MiddlewareOption = None,
    node_name: NodeNameOption = None,
    config: ConfigOption = None,
    concurrency: ConcurrencyOption = None,
    cancel_grace: CancelGraceOption = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
    redis_ca_file: RedisCaFile = None,
    redis_cert_file: RedisCertFile = None,
    redis_key_file: RedisKeyFile = None,
) -> None:
    """Run one worker in the foreground (TERM: finish the current job and exit).

    Example: supervisor worker --tasks tasks.examples --queues default,reports
    """
    from supervisor.api.task_modules import import_task_modules
    from supervisor.logs import setup_logging
    from supervisor.worker.boot import await_redis, schedule_problems
    from supervisor.worker.concurrent import make_worker

    settings = load_config({"tasks": tasks, "queues": queues, "node_name": node_name,
                            "middleware": middleware,
                            "concurrency": concurrency,
                            "cancel_grace": cancel_grace,
                            "config_file": config, "log_level": log_level,
                            "log_format": log_format, "redis_ca_file": redis_ca_file,
                            "redis_cert_file": redis_cert_file, "redis_key_file": redis_key_file,
                            **redis_options(redis_url, redis_password_file)})
    if not settings.tasks:
        raise fail("no task modules given: pass --tasks MODULE (or SUPERVISOR_TASKS)",
                   errors.EXIT_USAGE)
    setup_logging(settings.log_level, settings.log_format, settings.log_file, settings.node_name)
    import_task_modules(settings.tasks)
    problems = schedule_problems(settings)
    if problems:
        raise fail("; ".join(problems), errors.EXIT_USAGE)
    from supervisor.api.middleware import install
    from supervisor.core.middleware import WorkerInfo

    hooks = install(settings)  # ConfigError (a middleware that does not load): exit 2
    if not await_redis(settings):  # RedisRefused: one line, exit 8
        raise typer.Exit(0)
    consumer = make_worker(settings)
    consumer.install_signals()
    me = WorkerInfo(consumer.consumer, 0, 0, os.getpid(), tuple(settings.queues))
    hooks.run("after_child_boot", me)
    code = consumer.run()
    hooks.run("before_child_exit", me)
    raise typer.Exit(code)
