"""Serving the dashboard with uvicorn, in the process `supervisor ui` runs (never the master)."""

from __future__ import annotations

import logging

from supervisor.config import Config
from supervisor.ui.app import make_app
from supervisor.ui.settings import UiSettings, check_binding

log = logging.getLogger("supervisor.ui")


def serve(settings: UiSettings, config: Config) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handlers end it cleanly)."""
    import uvicorn

    check_binding(settings)
    app = make_app(settings, config)
    where = f"http://{settings.bind}:{settings.port}{settings.base_path}/"
    log.info("dashboard on %s (%s, %s)", where,
             "token required" if settings.token else "no token",
             "actions on" if settings.allow_actions else "read-only")
    if settings.token is None and settings.insecure:
        log.warning("--insecure: anyone who reaches %s sees the cluster%s", where,
                    " and can act on it" if settings.allow_actions else "")
    uvicorn.run(app, host=settings.bind, port=settings.port, log_level="warning",
                access_log=False, server_header=False, proxy_headers=False)
