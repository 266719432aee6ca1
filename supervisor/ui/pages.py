"""The HTML pages: overview, workers, jobs, one job, dead letters, one letter, schedules.

Server-rendered with Jinja2, autoescaping everything (job arguments and
tracebacks are user data). The pages refresh their live part by fetching
themselves again every few seconds (static/app.js), so no page builds HTML
from data in the browser.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from supervisor.errors import AmbiguousJob, JobNotFound
from supervisor.ui import data
from supervisor.ui.actions import ACTIONS
from supervisor.ui.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    FLASH_COOKIE,
    SESSION_COOKIE,
    check_token,
    csrf_ok,
    new_csrf,
    same_origin,
    session_value,
)
from supervisor.ui.common import (
    BadRequest,
    body_params,
    dashboard,
    limit_of,
    query,
    read,
    safe_next,
)

NAV = [("/", "Overview"), ("/workers", "Workers"), ("/jobs", "Jobs"), ("/dead", "Dead letters"),
       ("/schedules", "Schedules")]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    dash = dashboard(request)
    csrf = request.cookies.get(CSRF_COOKIE) or new_csrf()
    body = dash.templates.get_template(template).render(
        base=dash.settings.base_path, nav=NAV, path=request.url.path, csrf=csrf,
        csrf_field=CSRF_FIELD, actions=ACTIONS, actions_on=dash.settings.allow_actions,
        token_on=dash.settings.token is not None,
        msg=unquote(request.cookies.get(FLASH_COOKIE, "")) or None,
        here=_here(request),
        now=time.time(), quote=quote, **context)
    response = HTMLResponse(body, status_code=status_code)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=dash.settings.base_path or "/")
    if request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                            path=dash.settings.base_path or "/")
    return response


def _here(request: Request) -> str:
    """This page's address (where its forms send the browser back)."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


Loader = Callable[[Request], Awaitable[dict[str, Any]]]


def page(template: str, loader: Loader) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            context = await loader(request)
        except JobNotFound as exc:
            return render(request, "error.html", 404, title="Not found", error=str(exc))
        except AmbiguousJob as exc:
            return render(request, "error.html", 409, title="Which queue?", error=str(exc))
        except (BadRequest, ValueError) as exc:
            return render(request, "error.html", 400, title="Bad request", error=str(exc))
        except redis.exceptions.RedisError as exc:
            return render(request, "error.html", 503, title="Redis unreachable",
                          error=f"Redis: {exc}")
        if isinstance(context.get("redirect"), str):
            return RedirectResponse(context["redirect"], status_code=303)
        return render(request, template, **context)

    return run


async def _overview(request: Request) -> dict[str, Any]:
    dash = dashboard(request)
    return {"doc": await read(data.overview, dash.client, dash.config.redis_url)}


async def _workers(request: Request) -> dict[str, Any]:
    return {"workers": await read(data.workers, dashboard(request).client)}


async def _jobs(request: Request) -> dict[str, Any]:
    dash = dashboard(request)
    wanted = query(request, "id")
    if wanted:
        return {"redirect": dash.url("/jobs/" + quote(wanted, safe=""))}
    filters = {name: query(request, name) for name in ("queue", "state", "task")}
    rows = await read(data.jobs, dash.client, filters["queue"], filters["state"],
                      filters["task"], limit_of(request))
    queues = await read(lambda: data.known_queues(dash.client))
    return {"rows": rows, "filters": filters, "queues": queues, "states": data.STATES}


async def _job(request: Request) -> dict[str, Any]:
    return {"job": await read(data.job, dashboard(request).client,
                              request.path_params["job_id"], query(request, "queue"))}


async def _dead(request: Request) -> dict[str, Any]:
    dash = dashboard(request)
    filters = {name: query(request, name) for name in ("queue", "reason", "task")}
    rows = await read(data.dead, dash.client, filters["queue"], filters["reason"],
                      filters["task"], limit_of(request, 100))
    queues = await read(lambda: data.known_queues(dash.client))
    return {"rows": rows, "filters": filters, "queues": queues}


async def _letter(request: Request) -> dict[str, Any]:
    return {"letter": await read(data.dead_letter, dashboard(request).client,
                                 request.path_params["job_id"], query(request, "queue"))}


async def _schedules(request: Request) -> dict[str, Any]:
    dash = dashboard(request)
    return {"rows": await read(data.schedules, dash.config, dash.client)}


PAGES = [
    ("/", page("overview.html", _overview)),
    ("/workers", page("workers.html", _workers)),
    ("/jobs", page("jobs.html", _jobs)),
    ("/jobs/{job_id}", page("job.html", _job)),
    ("/dead", page("dead.html", _dead)),
    ("/dead/{job_id}", page("letter.html", _letter)),
    ("/schedules", page("schedules.html", _schedules)),
]


# --- login (only with a token) ------------------------------------------------


async def login_form(request: Request) -> Response:
    dash = dashboard(request)
    if dash.settings.token is None:
        return RedirectResponse(dash.url("/"), status_code=303)
    return render(request, "login.html", next=request.query_params.get("next", ""),
                  hide_nav=True)


async def login(request: Request) -> Response:
    dash = dashboard(request)
    try:
        params, _ = await body_params(request)
    except BadRequest:
        params = {}
    target = safe_next(params.get("next"), dash.settings.base_path)
    if dash.settings.token is None:
        return RedirectResponse(target, status_code=303)
    if not same_origin(request) or not csrf_ok(request, params.get(CSRF_FIELD)):
        return render(request, "login.html", 403, next=target, hide_nav=True,
                      error="the form expired: try again")
    if not check_token(params.get("token", ""), dash.settings.token):
        return render(request, "login.html", 401, next=target, hide_nav=True,
                      error="wrong token")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, session_value(dash.settings.token), httponly=True,
                        samesite="strict", path=dash.settings.base_path or "/")
    return response


async def logout(request: Request) -> Response:
    dash = dashboard(request)
    params, _ = await body_params(request)
    if not csrf_ok(request, params.get(CSRF_FIELD)):
        return render(request, "error.html", 403, title="Refused",
                      error="missing or wrong CSRF token")
    response = RedirectResponse(dash.url("/login"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=dash.settings.base_path or "/")
    return response
