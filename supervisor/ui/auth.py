"""Who may see and act: the token (header or login cookie) and CSRF for every POST.

- With a token, every page and API call needs it: `Authorization: Bearer T`
  (or `X-Supervisor-Token: T`), or the session cookie the login form sets;
  the cookie holds an HMAC of the token, never the token itself.
- Every POST carrying the session cookie or no credential at all (a browser)
  must also carry the CSRF value (form field `csrf` or header
  `X-CSRF-Token`) equal to the `sv_csrf` cookie (double submit); a request
  whose credential is a header is not one a browser sends by itself, so it
  needs none. A request whose Origin is another site is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "sv_session"
CSRF_COOKIE = "sv_csrf"
CSRF_FIELD = "csrf"
FLASH_COOKIE = "sv_flash"  # the outcome of the last action, shown once
CSRF_HEADER = "x-csrf-token"


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, useless elsewhere."""
    return hmac.new(token.encode(), b"supervisor-ui-session", hashlib.sha256).hexdigest()


def header_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-supervisor-token")


def credential(request: Request, token: str | None) -> str | None:
    """How the request proved itself: 'header', 'cookie', 'none' (no token needed), or
    None when it did not (a wrong header is wrong even with a good cookie)."""
    if token is None:
        return "header" if header_token(request) is not None else "none"
    given = header_token(request)
    if given is not None:
        return "header" if hmac.compare_digest(given.encode(), token.encode()) else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return "cookie"
    return None


def check_token(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def same_origin(request: Request) -> bool:
    """No Origin header (not a cross-site browser request), or this server's own."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "")


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    given = submitted or request.headers.get(CSRF_HEADER)
    return bool(cookie and given and hmac.compare_digest(cookie.encode(), given.encode()))
