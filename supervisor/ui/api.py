"""The JSON API under /api/ (documented in the README, "Dashboard").

GET /api/status is `supervisor status --json`; GET /api/jobs/<id> holds what
`supervisor job --json` prints, and more. Errors are {"error": "..."} with
400 (bad parameter), 401 (token), 403 (actions off, CSRF, another origin),
404 (unknown job, dead letter or action), 409 (a job id
in several queues: give ?queue=), 503 (Redis unreachable).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import redis
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from supervisor.api.statusview import status_document
from supervisor.errors import AmbiguousJob, JobNotFound
from supervisor.ui import data
from supervisor.ui.actions import ACTIONS, ActionError, perform
from supervisor.ui.auth import CSRF_FIELD, FLASH_COOKIE, credential, csrf_ok, same_origin
from supervisor.ui.common import (
    BadRequest,
    body_params,
    dashboard,
    limit_of,
    query,
    read,
    safe_next,
)

log = logging.getLogger("supervisor.ui")


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def answering(handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[
        Response]]:
    """The handler's document as JSON, and the errors as their status codes."""

    async def run(request: Request) -> Response:
        try:
            doc = await handler(request)
        except BadRequest as exc:
            return error(str(exc), 400)
        except ValueError as exc:
            return error(str(exc), 400)
        except JobNotFound as exc:
            return error(str(exc), 404)
        except AmbiguousJob as exc:  # an explicit id reused in several queues
            return error(f"{exc} (the API takes ?queue=)", 409)
        except redis.exceptions.RedisError as exc:
            return error(f"Redis: {exc}", 503)
        return doc if isinstance(doc, Response) else JSONResponse(doc)

    return run


@answering
async def status(request: Request) -> Any:
    dash = dashboard(request)
    return await read(status_document, dash.client, dash.config.redis_url)


@answering
async def overview(request: Request) -> Any:
    dash = dashboard(request)
    return await read(data.overview, dash.client, dash.config.redis_url)


@answering
async def workers(request: Request) -> Any:
    return await read(data.workers, dashboard(request).client)


@answering
async def jobs(request: Request) -> Any:
    limit = limit_of(request)
    return await read(data.jobs, dashboard(request).client, query(request, "queue"),
                      query(request, "state"), query(request, "task"), limit)


@answering
async def one_job(request: Request) -> Any:
    return await read(data.job, dashboard(request).client, request.path_params["job_id"],
                      query(request, "queue"))


@answering
async def dead(request: Request) -> Any:
    limit = limit_of(request, 100)
    return await read(data.dead, dashboard(request).client, query(request, "queue"),
                      query(request, "reason"), query(request, "task"), limit)


@answering
async def one_dead(request: Request) -> Any:
    return await read(data.dead_letter, dashboard(request).client,
                      request.path_params["job_id"], query(request, "queue"))


@answering
async def schedules(request: Request) -> Any:
    dash = dashboard(request)
    return await read(data.schedules, dash.config, dash.client)


@answering
async def actions(request: Request) -> Any:
    enabled = dashboard(request).settings.allow_actions
    return [{"name": found.name, "label": found.label, "params": list(found.params),
             "required": list(found.required), "enabled": enabled}
            for found in ACTIONS.values()]


async def run_action(request: Request) -> Response:
    """POST /api/actions/<name>: JSON or a form; a form with `next` is sent back there."""
    dash = dashboard(request)
    name = request.path_params["name"]
    who = f"{request.client.host if request.client else '?'} " \
          f"({credential(request, dash.settings.token)})"
    try:
        params, is_form = await body_params(request)
    except BadRequest as exc:
        return error(str(exc), 400)
    refused = _refusal(request, params)
    if refused:
        log.warning("action %s by %s refused: %s", name, who, refused)
        return error(refused, 403)
    shown = {key: value for key, value in params.items() if key not in (CSRF_FIELD, "next")}
    try:
        result = await read(perform, name, dash.producer, params)
    except ActionError as exc:
        log.warning("action %s %s by %s failed: %s", name, shown, who, exc)
        return _answer(request, params, is_form, {"error": str(exc)}, exc.status)
    except redis.exceptions.RedisError as exc:
        log.warning("action %s %s by %s failed: Redis: %s", name, shown, who, exc)
        return error(f"Redis: {exc}", 503)
    log.info("action %s %s by %s: %s", name, shown, who, result)
    return _answer(request, params, is_form, {"action": name, "ok": True, **result}, 200)


def _refusal(request: Request, params: dict[str, str]) -> str | None:
    dash = dashboard(request)
    if not same_origin(request):
        return "refused: the request comes from another site"
    if not dash.settings.allow_actions:
        return "actions are off: the dashboard runs read-only (start it with --allow-actions)"
    if credential(request, dash.settings.token) != "header" and \
            not csrf_ok(request, params.get(CSRF_FIELD)):
        return "refused: missing or wrong CSRF token (reload the page)"
    return None


def _answer(request: Request, params: dict[str, str], is_form: bool, doc: dict[str, Any],
            status_code: int) -> Response:
    if not (is_form and params.get("next")):
        return JSONResponse(doc, status_code=status_code)
    base = dashboard(request).settings.base_path
    response = RedirectResponse(safe_next(params["next"], base), status_code=303)
    # The outcome travels in a short-lived cookie, not the URL: a link cannot
    # make the dashboard show a message of someone else's choosing.
    response.set_cookie(FLASH_COOKIE, quote(doc.get("error") or _summary(doc)), max_age=60,
                        httponly=True, samesite="strict", path=base or "/")
    return response


def _summary(doc: dict[str, Any]) -> str:
    if "purged" in doc:
        return f"purged {doc['purged']} dead letter(s)"
    if "requeued" in doc:
        skipped = f", skipped {len(doc['skipped'])}" if doc.get("skipped") else ""
        return f"requeued {len(doc['requeued'])} job(s){skipped}"
    return f"{doc.get('action')}: done"


ENDPOINTS: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
    ("/api/status", status, ["GET"]),
    ("/api/overview", overview, ["GET"]),
    ("/api/workers", workers, ["GET"]),
    ("/api/jobs", jobs, ["GET"]),
    ("/api/jobs/{job_id}", one_job, ["GET"]),
    ("/api/dead", dead, ["GET"]),
    ("/api/dead/{job_id}", one_dead, ["GET"]),
    ("/api/schedules", schedules, ["GET"]),
    ("/api/actions", actions, ["GET"]),
    ("/api/actions/{name}", run_action, ["POST"]),
]
