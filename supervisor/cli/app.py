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
from supervisor.broker.connection import describe
from supervisor.version import __version__

T = TypeVar("T")

app = typer.Typer(
    name="supervisor",
    help="A prefork worker-pool supervisor for Redis-backed jobs.\n\n"
    "Example: supervisor run --workers 4 --tasks tasks.examples",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dead_app = typer.Typer(
    help="Inspect and act on dead-lettered jobs.\n\nExample: supervisor dead list --json",
    no_args_is_help=True,
)
app.add_typer(dead_app, name="dead")

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", envvar="SUPERVISOR_REDIS_URL", show_envvar=True,
                 help="redis://, rediss://, unix:// or embedded://DIR "
                      "[default: redis://127.0.0.1:6379/0]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


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
        # AuthenticationError is a ConnectionError in redis-py: catch it first.
        except (redis.exceptions.AuthenticationError,
                redis.exceptions.AuthenticationWrongNumberOfArgsError) as exc:
            raise fail(f"Redis refused the credentials: {exc}; check the URL's user and "
                       "password", errors.EXIT_REDIS_UNAVAILABLE) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            url = kwargs.get("redis_url") or "the configured URL"
            raise fail(f"cannot reach Redis at {describe(str(url))}: {exc}; is the server "
                       "running and --redis-url / SUPERVISOR_REDIS_URL right?",
                       errors.EXIT_REDIS_UNAVAILABLE) from None

    return wrapper


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
