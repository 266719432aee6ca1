"""`supervisor run`: the master with its prefork pool, wired to the worker here.

The master forks its children, so whatever it has imported is in every
child's memory. Typer coerces each option through pydantic, which alone is
about 8 MB of RSS and 60 ms of start-up, so `supervisor run` does not go
through typer when it need not: `run_fast` reads the options with argparse,
from the same declarations as the typer command below (flags, types,
environment variables), and hands anything it does not understand (`--help`,
unknown options, bad values) back to typer, which answers as always.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from typing import Annotated, Any

import typer

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
    default,
    user_errors,
)
from supervisor.config import Config, load_config
from supervisor.fork.context import ChildTarget


@app.command()
def run(
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Worker processes (children) [default: CPU count]")] = None,
    tasks: TasksOption = None,
    queues: QueuesOption = None,
    middleware: MiddlewareOption = None,
    config: ConfigOption = None,
    node_name: NodeNameOption = None,
    graceful_timeout: Annotated[float | None, typer.Option(
        "--graceful-timeout", help="Seconds a stopping worker may take to finish its job; "
                                   "then it is killed." + default("graceful_timeout"))] = None,
    max_jobs_per_child: Annotated[int | None, typer.Option(
        "--max-jobs-per-child", help="Recycle a worker after this many jobs (with up to 10 % "
                                     "jitter)." + default("max_jobs_per_child", off=True))]
    = None,
    max_memory_per_child: Annotated[int | None, typer.Option(
        "--max-memory-per-child", help="MB of RSS; recycle a worker over it after its job."
                                       + default("max_memory_per_child", off=True))] = None,
    heartbeat_timeout: Annotated[float | None, typer.Option(
        "--heartbeat-timeout", help="Seconds of silence before a worker is hung (and a "
                                    "node dead for the others)." + default("heartbeat_timeout"))]
    = None,
    concurrency: ConcurrencyOption = None,
    max_crashes: Annotated[int | None, typer.Option(
        "--max-crashes", help="Worker deaths on one job before it is dead-lettered as a "
                              "poison pill." + default("max_crashes"))] = None,
    cancel_grace: CancelGraceOption = None,
    pidfile: Annotated[str | None, typer.Option(
        "--pidfile", help="Write the master's pid here (and the reload state, for "
                          "`supervisor reload --wait`) [default: none]")] = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    log_file: Annotated[str | None, typer.Option(
        "--log-file", help="Log to this file, reopened on USR1 [default: stderr]")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="Serve Prometheus /metrics on this port."
                               + default("metrics_port", off=True))] = None,
    metrics_bind: Annotated[str | None, typer.Option(
        "--metrics-bind", help="Address for /metrics." + default("metrics_bind"))] = None,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
    redis_ca_file: RedisCaFile = None,
    redis_cert_file: RedisCertFile = None,
    redis_key_file: RedisKeyFile = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", envvar="SUPERVISOR_NAMESPACE", show_envvar=True,
        help="Prefix of every Redis key: applications sharing one Redis or Cluster do not "
             "see each other's queues, nodes or schedules." + default("namespace"))] = None,
    wait_replicas: Annotated[int | None, typer.Option(
        "--wait-replicas", help="WAIT for this many replicas after each enqueue and settle "
                                "(Sentinel / replicated setups)." + default("wait_replicas"))]
    = None,
    wait_timeout: Annotated[float | None, typer.Option(
        "--wait-timeout", help="Seconds a WAIT for replicas may take before the write is "
                               "tried again." + default("wait_timeout"))] = None,
) -> None:
    """Run the master: fork --workers children and supervise them.

    Signals: TERM graceful stop, INT/QUIT quick stop, HUP reload,
    TTIN/TTOU one worker more/fewer, USR1 reopen logs.

    Example: supervisor run --workers 4 --tasks tasks.examples --queues default,reports
    """
    start(**locals())  # the parameters, and only they: keep this the first statement


@user_errors
def start(**options: Any) -> None:
    """The body of `run`, whichever parser read the options."""
    cli = {("config_file" if name == "config" else name): value
           for name, value in options.items()}

    def load() -> Config:
        # Re-read on HUP: the file and environment may have changed; CLI values stay.
        return load_config(cli)

    first = load()  # refuse bad values now, with the option named
    if not first.tasks:
        typer.echo("error: no task modules given: pass --tasks MODULE (or SUPERVISOR_TASKS)",
                   err=True)
        raise typer.Exit(2)
    from supervisor.logs import setup_logging
    from supervisor.master.serve import run_master

    setup_logging(first.log_level, first.log_format, first.log_file, first.node_name)
    raise typer.Exit(run_master(load, target=preload_worker()))


def preload_worker() -> ChildTarget:
    """The children's entry point, imported in the master before its first fork, on purpose.

    This is where the master and the worker are wired together (the master
    package imports nothing of the worker). Importing the worker's modules
    here, in the master, means every child inherits them already loaded:
    the pages are shared between the children instead of copied into each,
    and a child boots without paying for the imports (redis-py, tenacity,
    cronsim, the broker: about 13 MB more USS and 80 ms more boot per child
    otherwise; benchmarks/README.md, "Idle memory"). They are the worker's own modules, never task
    code: each child imports --tasks itself after the fork, so a reload
    runs the code as it is on disk now. The master never calls into them:
    it never talks to Redis.
    """
    from supervisor.worker.child import child_main

    return child_main


class _Unparsed(Exception):
    """argparse met something only typer should answer (help, a bad value, a typo)."""


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _Unparsed(message)


def _declared_options() -> list[tuple[str, tuple[str, ...], type, str | None]]:
    """(parameter, flags, value type, environment variable) of each option of `run`,
    read the way typer reads them."""
    from typer.utils import get_params_from_function

    declared = []
    for name, meta in get_params_from_function(run).items():
        info = meta.default
        if not isinstance(info, typer.models.OptionInfo) or not info.param_decls:
            raise TypeError(f"option {name}: not a plain typer option")
        value_type = next(t for t in typing.get_args(meta.annotation) or (meta.annotation,)
                          if t is not type(None))
        if value_type not in (int, float, str):
            raise TypeError(f"option {name}: type {value_type!r}")
        envvar = info.envvar if isinstance(info.envvar, str) else None
        declared.append((name, tuple(info.param_decls), value_type, envvar))
    return declared


def parse_fast(argv: list[str]) -> dict[str, Any] | None:
    """The options of `run` as typer would give them; None if typer must answer instead."""
    parser = _QuietParser(prog="supervisor run", add_help=False, allow_abbrev=False)
    try:
        declared = _declared_options()
    except (TypeError, AttributeError, ImportError):  # typer changed: let it parse
        return None
    for name, flags, value_type, _ in declared:
        parser.add_argument(*flags, dest=name, type=value_type)
    try:
        options, rest = parser.parse_known_args(argv)
    except _Unparsed:
        return None
    if rest:  # --help, an unknown option or an extra argument
        return None
    values = vars(options)
    for name, _, value_type, envvar in declared:
        if values[name] is None and envvar and os.environ.get(envvar):
            try:
                values[name] = value_type(os.environ[envvar])
            except ValueError:
                return None
    return values


def run_fast(argv: list[str]) -> None:
    """Run the master without typer's parsing; returns only if typer must parse `argv`."""
    options = parse_fast(argv)
    if options is None:
        return
    try:
        start(**options)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    sys.exit(0)
