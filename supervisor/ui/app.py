"""The dashboard's ASGI application: routes, guards, security headers.

Pages (pages.py) and the JSON API (api.py) share one guard: the token when
one is set, and for every POST the CSRF check and --allow-actions (auth.py).
Redis is read with the synchronous client in Starlette's thread pool.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervisor.api.producer import Producer
from supervisor.config import Config
from supervisor.core.timefmt import span, stamp
from supervisor.ui import api, pages
from supervisor.ui.auth import credential
from supervisor.ui.settings import UiSettings

HERE = Path(__file__).resolve().parent
log = logging.getLogger("supervisor.ui")

# Scripts and styles from this server only, none inline: a value that slipped
# through escaping still could not run.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


@dataclass
class Dashboard:
    """What every request handler needs, kept on app.state.dashboard."""

    settings: UiSettings
    config: Config
    producer: Producer
    templates: Environment

    @property
    def client(self) -> Any:
        return self.producer.client

    def url(self, path: str) -> str:
        return self.settings.base_path + path


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler, *, page: bool) -> Handler:
    """Answer 401 (API) or send to the login form (page) when the token is missing."""

    async def run(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        if credential(request, dash.settings.token) is None:
            if not page:
                return JSONResponse({"error": "a valid token is needed (Authorization: "
                                     "Bearer TOKEN, or log in)"}, status_code=401)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(dash.url("/login") + "?" + _next(target), status_code=303)
        return await handler(request)

    return run


def _next(target: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": target})


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["stamp"] = stamp
    env.filters["span"] = span
    # Not Jinja's tojson (which writes < as \u003c, for scripts): plain JSON text,
    # then escaped like everything else, so an argument reads as it was given.
    env.filters["as_json"] = lambda value: json.dumps(value, sort_keys=True, default=str)
    return env


def routes() -> list[BaseRoute]:
    page_routes = [Route(path, guarded(handler, page=True), methods=["GET"])
                   for path, handler in pages.PAGES]
    api_routes = [Route(path, guarded(handler, page=False), methods=methods)
                  for path, handler, methods in api.ENDPOINTS]
    return [
        *page_routes, *api_routes,
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def make_app(settings: UiSettings, config: Config, producer: Producer | None = None) -> Starlette:
    dash = Dashboard(settings, config, producer or Producer(config), templates())
    headers = [Middleware(SecurityHeaders),
               Middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts(),
                          www_redirect=False)]
    if not settings.base_path:
        app = Starlette(routes=routes(), middleware=headers)
        app.state.dashboard = dash
        return app
    inner = Starlette(routes=routes())
    inner.state.dashboard = dash
    outer = Starlette(routes=[
        Route("/", lambda request: RedirectResponse(settings.base_path + "/", 303)),
        Mount(settings.base_path, app=inner)], middleware=headers)
    outer.state.dashboard = dash
    return outer
