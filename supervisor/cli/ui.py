"""`supervisor ui`: the web dashboard, in its own process (needs the `ui` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from supervisor import errors
from supervisor.cli.app import RedisPasswordFile, RedisUrl, app, fail, redis_options, user_errors
from supervisor.config import load_config


@app.command()
@user_errors
def ui(
    port: Annotated[int, typer.Option("--port", min=1, max=65535,
                                      help="TCP port to serve on.")] = 8765,
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on; beyond "
                                      "loopback it needs a token or --insecure.")] = "127.0.0.1",
    token: Annotated[str | None, typer.Option(
        "--token", envvar="SUPERVISOR_UI_TOKEN", show_envvar=True,
        help="Require this token on every page and API call (shown in ps: prefer "
             "--token-file or the environment).")] = None,
    token_file: Annotated[str | None, typer.Option(
        "--token-file", envvar="SUPERVISOR_UI_TOKEN_FILE", show_envvar=True,
        help="File whose first line is the token.")] = None,
    allow_actions: Annotated[bool, typer.Option(
        "--allow-actions", help="Allow the actions: requeue, requeue all, purge, cancel, "
                                "retry now, pause and resume (POST, CSRF-checked, logged); "
                                "read-only without it.")] = False,
    base_path: Annotated[str | None, typer.Option(
        "--base-path", help="Serve under this path prefix (behind a reverse proxy), "
                            "e.g. /supervisor.")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Allow binding beyond loopback without a token.")] = False,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="A host name the dashboard is reached by (repeatable); "
                               "requests with another Host header get 400 (DNS rebinding). "
                               "Always allowed: the bind address, localhost, 127.0.0.1.")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or "
                                           "ERROR.")] = "INFO",
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Serve the web dashboard: nodes, workers, queues, jobs, dead letters, schedules.

    Example: supervisor ui --port 8765 --token-file /etc/supervisor/ui-token --allow-actions
    """
    try:
        from supervisor.ui.server import serve
        from supervisor.ui.settings import UiSettings, normal_base_path, read_token
    except ImportError as exc:
        raise fail(f"the dashboard needs the ui extra: pip install 'redis-supervisor[ui]' "
                   f"({exc})", errors.EXIT_USAGE) from None
    from supervisor.logs import setup_logging

    config = load_config(redis_options(redis_url, redis_password_file))
    settings = UiSettings(redis_url=config.redis_url, port=port, bind=bind,
                          token=read_token(token, token_file), allow_actions=allow_actions,
                          base_path=normal_base_path(base_path), insecure=insecure,
                          allowed_hosts=tuple(allowed_host or ()))
    setup_logging(log_level.upper())
    serve(settings, config)
