"""Redis URLs: refuse the ambiguous ones, merge a separate password and TLS files in, redact.

A password with `@`, `/`, `?`, `#` or `%` written into a URL as is makes the
URL mean something else (another host, a path, a cut-off password) and sends
part of the secret where it was never meant to go. Such a URL is refused
with a message that shows how to encode it, and the password can come
separately (`--redis-password-file`, `SUPERVISOR_REDIS_PASSWORD`): it is
merged into the URL here, percent-encoded, so every connection made from the
configuration carries it. The same for the TLS files of a `rediss://` URL.

No message of this module ever contains a password. No redis import at the
top: the master side loads this module too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

SCHEMES = ("redis://", "rediss://", "unix://", "embedded://")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

ENCODE_HINT = ("percent-encode it (@ as %40, / as %2F, % as %25, ? as %3F, # as %23), e.g. "
               "python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], "
               "safe=\"\"))' 'PASSWORD', or leave it out of the URL and give it with "
               "--redis-password-file FILE (SUPERVISOR_REDIS_PASSWORD_FILE) or "
               "SUPERVISOR_REDIS_PASSWORD")


@dataclass(frozen=True, slots=True)
class Tls:
    """The TLS files of a rediss:// connection (None: not given)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def query(self) -> dict[str, str]:
        """As redis-py's URL parameters."""
        names = {"ssl_ca_certs": self.ca_file, "ssl_certfile": self.cert_file,
                 "ssl_keyfile": self.key_file}
        return {name: value for name, value in names.items() if value}


def _split(url: str) -> tuple[str, str, str]:
    """(scheme://, authority, the rest: path, query and fragment) as written."""
    scheme, _, rest = url.partition("://")
    cut = min((index for index in (rest.find(c) for c in "/?#") if index >= 0), default=len(rest))
    return scheme + "://", rest[:cut], rest[cut:]


def complaint(url: str) -> str | None:
    """Why `url` cannot be used as it is (never quoting a secret), or None."""
    if not url.startswith(SCHEMES):
        return "must start with redis://, rediss://, unix:// or embedded://"
    if url.startswith("embedded://"):
        return None
    _, authority, rest = _split(url)
    userinfo = authority.rpartition("@")[0]
    # An '@' after the host (in what would be the path or the parameters) means the
    # password held a '/', '?' or '#' that cut the URL short.
    if authority.count("@") > 1 or ("@" in rest and not url.startswith("unix://")):
        return ("the user or password in it holds a character that must be percent-encoded; "
                + ENCODE_HINT)
    if _BAD_PERCENT.search(userinfo):
        return "the password in it holds a '%' that is not percent-encoded; " + ENCODE_HINT
    return _unknown_parameter(rest.partition("?")[2].partition("#")[0], url)


def _unknown_parameter(query: str, url: str) -> str | None:
    """redis-py passes unknown URL parameters on to its connection class: a TypeError later."""
    if not query:
        return None
    known = known_parameters(url)
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            tls = (" (TLS files are settings of their own: --redis-ca-file, "
                   "--redis-cert-file, --redis-key-file)" if name.startswith(("ssl", "tls"))
                   else "")
            return f"unknown URL parameter {name!r}{hint}{tls}"
    return None


def known_parameters(url: str) -> set[str]:
    """The URL parameters redis-py accepts for this scheme."""
    import inspect

    import redis.connection as rc

    kind = {"rediss://": rc.SSLConnection, "unix://": rc.UnixDomainSocketConnection}
    connection = next((cls for prefix, cls in kind.items() if url.startswith(prefix)),
                      rc.Connection)
    names = set(rc.URL_QUERY_ARGUMENT_PARSERS) | {"db", "password", "username"}
    for cls in connection.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            names |= {name for name, parameter in inspect.signature(init).parameters.items()
                      if parameter.kind is parameter.KEYWORD_ONLY
                      or parameter.kind is parameter.POSITIONAL_OR_KEYWORD}
    return names - {"self"}


def has_password(url: str) -> bool:
    scheme, authority, rest = _split(url)
    if scheme == "unix://":
        return any(name == "password" for name, _ in parse_qsl(rest.partition("?")[2]))
    return ":" in authority.rpartition("@")[0]


def merge(url: str, password: str | None, tls: Tls) -> str:
    """`url` with `password` (percent-encoded) and the TLS files in it."""
    scheme, authority, rest = _split(url)
    path, _, query = rest.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    if password is not None:
        if scheme == "unix://":
            params.append(("password", password))
        else:
            user, at, host = authority.rpartition("@")
            authority = f"{user}:{quote(password, safe='')}@{host}" if at else \
                f":{quote(password, safe='')}@{authority}"
    params += list(tls.query().items())
    return f"{scheme}{authority}{path}" + (f"?{urlencode(params)}" if params else "")


@dataclass(frozen=True, slots=True)
class Where:
    """What a message may say about a URL: user, server and database, never the password."""

    user: str
    server: str
    db: str

    def __str__(self) -> str:
        return f"user {self.user!r} at {self.server}, database {self.db}"


def where(url: str) -> Where:
    scheme, authority, rest = _split(url)
    path, _, query = rest.partition("?")
    params = dict(parse_qsl(query.partition("#")[0]))
    userinfo, _, host = authority.rpartition("@")
    user = userinfo.partition(":")[0] or params.get("username") or "default"
    if scheme == "unix://":
        return Where(user, f"unix socket {path}", params.get("db", "0"))
    db = path.strip("/") or params.get("db", "0")
    return Where(user, host or "localhost:6379", db)


def describe(url: str) -> str:
    """The URL for messages: no password, no parameters (TLS file paths and the like)."""
    if url.startswith("embedded://"):
        return url
    scheme, authority, rest = _split(url)
    userinfo, at, host = authority.rpartition("@")
    user = userinfo.partition(":")[0]
    shown = f"{user}:***@{host}" if ":" in userinfo else (f"{user}@{host}" if at else host)
    return f"{scheme}{shown}{rest.partition('?')[0].partition('#')[0]}"


DEFAULT_EMBEDDED_DIR = ".supervisor"


def embedded_dir(url: str) -> Path:
    """The data folder of an `embedded://[DIR]` URL (default ./.supervisor), resolved.

    Here, in a leaf, because the master names its node lock after it and must
    not import the broker.
    """
    rest = url[len("embedded://"):]
    return Path(rest or DEFAULT_EMBEDDED_DIR).resolve()
