"""Helpers of the page and API handlers: reading Redis off the event loop, parameters."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

T = TypeVar("T")
MAX_LIMIT = 500


class BadRequest(Exception):
    """A parameter that cannot be used (400)."""


def dashboard(request: Request) -> Any:
    return request.app.state.dashboard


async def read(fn: Callable[..., T], *args: Any) -> T:
    """Run a (blocking) Redis read in the thread pool."""
    return await run_in_threadpool(fn, *args)


def limit_of(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise BadRequest(f"limit must be a whole number, got {raw!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


async def body_params(request: Request) -> tuple[dict[str, str], bool]:
    """The POST's parameters (a JSON object or a urlencoded form), and whether it was a form."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}, False
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), True


def safe_next(target: str | None, base: str) -> str:
    """A redirect target on this dashboard only (never another site)."""
    if target and target.startswith(base + "/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return base + "/"
