"""The `supervisor` command line: thin commands over the pieces of the package.

User errors end in one line on stderr and a named exit code (errors.py);
bugs still show their traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import redis
import typer

from supervisor import errors
from supervisor.config import Config
from supervisor.version import __version__

T = TypeVar("T")

# Plain help (no rich markup): rich would eat "[default: ...]" and "[[schedule]]" as
# markup and show a value type after flags that take none. -h is --help.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="supervisor",
    help="A prefork worker-pool supervisor for Redis-backed jobs.\n\n"
    "Example: supervisor run --workers 4 --tasks tasks.examples",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
dead_app = typer.Typer(
    help="Inspect and act on dead-lettered jobs.\n\nExample: supervisor dead list --json",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(dead_app, name="dead")


def default(name: str, off: bool = False) -> str:
    """' [default: X]' for a help text, X being Config's own default of option `name`."""
    value = Config.__dataclass_fields__[name].default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    shown = ",".join(value) if isinstance(value, tuple) else str(value)
    return f" [default: {shown}{' (off)' if off else ''}]"


TasksOption = Annotated[str | None, typer.Option(
    "--tasks", "-t", help="Task modules, comma-separated (imported from the current "
                          "directory).")]
MiddlewareOption = Annotated[str | None, typer.Option(
    "--middleware", help="Hooks to run, package.module:Class, comma-separated (README, "
                         "\"Hooks\") [default: none]")]
QueuesOption = Annotated[str | None, typer.Option(
    "--queues", "-Q", help="Queues to consume, comma-separated." + default("queues"))]
CancelGraceOption = Annotated[float | None, typer.Option(
    "--cancel-grace", help="Seconds a cancelled running job has to stop after "
                           "JobCancelled is raised in it, before its worker is killed."
                           + default("cancel_grace"))]
ConcurrencyOption = Annotated[int | None, typer.Option(
    "--concurrency", "-k", help="Jobs each worker runs at once: sync tasks on as many "
                                "threads, async def tasks on one event loop (1: one at a "
                                "time, no threads)." + default("concurrency"))]
ConfigOption = Annotated[str | None, typer.Option(
    "--config", "-c", help="TOML config file (re-read on reload) [default: "
                           "SUPERVISOR_CONFIG, else none]")]
NodeNameOption = Annotated[str | None, typer.Option(
    "--node-name", help="Names this pool in consumer names and `status`; give each pool "
                        "on a host its own [default: the host name]")]
LogLevelOption = Annotated[str | None, typer.Option(
    "--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL." + default("log_level"))]
LogFormatOption = Annotated[str | None, typer.Option(
    "--log-format", help="text or json (one object per line)." + default("log_format"))]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", envvar="SUPERVISOR_REDIS_URL", show_envvar=True,
                 help="redis://, rediss://, unix://, embedded://DIR, "
                      "redis+sentinel://H1:26379,H2:26379/MASTER[/DB] or "
                      "redis+cluster://H1:7000,H2:7001; a password in it "
                      "percent-encoded" + default("redis_url")),
]
RedisPasswordFile = Annotated[
    str | None,
    typer.Option("--redis-password-file", envvar="SUPERVISOR_REDIS_PASSWORD_FILE",
                 show_envvar=True,
                 help="File holding the Redis password, kept out of the URL "
                      "(or SUPERVISOR_REDIS_PASSWORD)."),
]
RedisCaFile = Annotated[str | None, typer.Option(
    "--redis-ca-file", envvar="SUPERVISOR_REDIS_CA_FILE", show_envvar=True,
    help="TLS (rediss://): CA certificates to verify the server with [default: the system's]")]
RedisCertFile = Annotated[str | None, typer.Option(
    "--redis-cert-file", envvar="SUPERVISOR_REDIS_CERT_FILE", show_envvar=True,
    help="TLS: client certificate, for a server that asks for one (with --redis-key-file).")]
RedisKeyFile = Annotated[str | None, typer.Option(
    "--redis-key-file", envvar="SUPERVISOR_REDIS_KEY_FILE", show_envvar=True,
    help="TLS: the client certificate's private key.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
JobQueue = Annotated[str | None, typer.Option(
    "--queue", "-q", help="The job's queue; needed only when an explicit job id was used in "
                          "several queues (every queue is searched otherwise).")]


def redis_options(redis_url: str | None, redis_password_file: str | None) -> dict[str, Any]:
    """The connection options every command takes, for load_config."""
    return {"redis_url": redis_url, "redis_password_file": redis_password_file}


def connected(redis_url: str | None, redis_password_file: str | None) -> tuple[Any, str]:
    """A client of the configured Redis, in the configured namespace (every key this
    process names is then the application's own), and the URL it was made from (for
    messages that name the server)."""
    from supervisor.broker import keys
    from supervisor.broker.connection import connect
    from supervisor.config import load_config

    settings = load_config(redis_options(redis_url, redis_password_file))
    keys.use_namespace(settings.namespace)
    return connect(settings.redis_url, socket_timeout=5.0), settings.redis_url


def fail(message: str, code: int = errors.EXIT_FAILURE) -> typer.Exit:
    """Print one clear line on stderr; return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def user_errors(command: Callable[..., T]) -> Callable[..., T]:
    """Turn expected failures into one line and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return command(*args, **kwargs)
        except errors.ConfigError as exc:
            raise fail(str(exc), errors.EXIT_USAGE) from None
        except errors.JobNotFound as exc:
            raise fail(str(exc), errors.EXIT_NOT_FOUND) from None
        except errors.BrokerUnavailable as exc:
            raise fail(str(exc), errors.EXIT_REDIS_UNAVAILABLE) from None
        except (errors.PayloadTooLarge, errors.InvalidMessage) as exc:
            raise fail(str(exc), errors.EXIT_USAGE) from None
        except errors.TaskImportError as exc:
            raise fail(str(exc), errors.EXIT_TASK_IMPORT) from None
        except errors.RedisRefused as exc:
            raise fail(str(exc), errors.EXIT_REDIS_REFUSED) from None
        except redis.exceptions.RedisError as exc:
            raise _redis_failure(exc, kwargs) from None

    return wrapper


def _redis_failure(exc: redis.exceptions.RedisError, options: dict[str, Any]) -> typer.Exit:
    """One line for a Redis error a user can act on; the error itself if it is a bug."""
    from supervisor.broker.refusals import classify, write_refusal
    from supervisor.config import load_config

    try:
        url = load_config(redis_options(options.get("redis_url"),
                                        options.get("redis_password_file"))).redis_url
    except errors.ConfigError:
        url = str(options.get("redis_url") or "redis://the-configured-url")
    refusal = classify(exc, url)
    if refusal is not None and refusal.permanent:
        return fail(refusal.text, errors.EXIT_REDIS_REFUSED)
    if refusal is not None and (write_refusal(exc, url) or isinstance(
            exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)):
        hint = "" if write_refusal(exc, url) else \
            "; is the server running and --redis-url / SUPERVISOR_REDIS_URL right?"
        return fail(refusal.text + hint, errors.EXIT_REDIS_UNAVAILABLE)
    raise exc


def _version(value: bool) -> None:
    if value:
        typer.echo(f"supervisor {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """supervisor: at-least-once jobs on Redis Streams, a prefork pool, systemd-native.

    Example: supervisor run --workers 4 --tasks tasks.examples
    """


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
