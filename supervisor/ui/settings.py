"""The dashboard's options, and the binding rule that keeps it safe by default."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from supervisor.errors import ConfigError

DEFAULT_PORT = 8765
DEFAULT_BIND = "127.0.0.1"


@dataclass(frozen=True)
class UiSettings:
    redis_url: str
    port: int = DEFAULT_PORT
    bind: str = DEFAULT_BIND
    token: str | None = None
    allow_actions: bool = False
    base_path: str = ""
    insecure: bool = False
    allowed_hosts: tuple[str, ...] = ()  # --allowed-host: names it is reached by

    def trusted_hosts(self) -> list[str]:
        """The Host headers answered (the rest get 400, against DNS rebinding: a page of
        another site whose name now points here must not read the dashboard).

        The bind address, localhost and 127.0.0.1, and --allowed-host; bound to every
        address (0.0.0.0, ::) without --allowed-host, any name: the names it is reached
        by are not known here, and a token (or --insecure) is then required anyway.
        """
        if self.bind in ("0.0.0.0", "::", "") and not self.allowed_hosts:
            return ["*"]
        return list(dict.fromkeys([self.bind, "localhost", "127.0.0.1", *self.allowed_hosts]))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The token from --token or --token-file (first line, stripped); both is an error."""
    if token and token_file:
        raise ConfigError("give --token or --token-file, not both")
    if token_file:
        try:
            token = Path(token_file).read_text().strip().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(f"--token-file {token_file}: cannot read a token ({exc})") \
                from None
    if token is not None and len(token) < 8:
        raise ConfigError("the token must be at least 8 characters long")
    return token or None


def normal_base_path(path: str | None) -> str:
    """'' or '/prefix' (leading slash, no trailing one)."""
    path = (path or "").strip()
    if path in ("", "/"):
        return ""
    if any(ch in path for ch in "?#\"'<> ") or "//" in path:
        raise ConfigError(f"--base-path {path!r}: a path such as /supervisor")
    return "/" + path.strip("/")


def check_binding(settings: UiSettings) -> None:
    """Refuse to serve beyond this host without a token, unless --insecure says so."""
    if settings.token or settings.insecure or is_loopback(settings.bind):
        return
    raise ConfigError(f"--bind {settings.bind} serves beyond this host: give --token-file "
                      "(or --token), or --insecure to serve without authentication")
