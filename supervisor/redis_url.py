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

SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
SCHEMES = ("redis://", "rediss://", "unix://", "embedded://", *SENTINEL_SCHEMES,
           *CLUSTER_SCHEMES)
TLS_SCHEMES = ("rediss://", "rediss+sentinel://", "rediss+cluster://")
# Parameters of a Sentinel URL for the sentinels themselves (their own ACL user and
# password; the data servers' credentials are the URL's user and password).
SENTINEL_PARAMETERS = frozenset({"sentinel_username", "sentinel_password"})
_CELERY_SENTINEL = "sentinel://"
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


def kind(url: str) -> str:
    """'sentinel', 'cluster', 'embedded' or 'single' (redis://, rediss://, unix://)."""
    if url.startswith(SENTINEL_SCHEMES):
        return "sentinel"
    if url.startswith(CLUSTER_SCHEMES):
        return "cluster"
    return "embedded" if url.startswith("embedded://") else "single"


def normalize(url: str) -> str:
    """Celery's `sentinel://h1:26379;sentinel://h2:26379?master_name=M` as redis+sentinel://.

    Any other URL is returned as it is. The password of the first part (the
    only place Celery users write it) is kept; the database is the last
    part's path, as in kombu.
    """
    if not url.startswith(_CELERY_SENTINEL):
        return url
    parts = [part.strip() for part in url.split(";") if part.strip()]
    if not all(part.startswith(_CELERY_SENTINEL) for part in parts):
        return url  # complaint() says what is wrong with it
    userinfo, hosts, path, params = "", [], "", []
    for index, part in enumerate(parts):
        _, authority, rest = _split("redis+" + part)
        info, at, host = authority.rpartition("@")
        if index == 0 and at:
            userinfo = info + "@"
        hosts.append(host)
        rest_path, _, query = rest.partition("?")
        path = rest_path.strip("/") or path
        params += parse_qsl(query, keep_blank_values=True)
    name = next((value for key, value in params if key == "master_name"), "")
    others = [(key, value) for key, value in params if key != "master_name"]
    tail = f"/{name}" + (f"/{path}" if path else "")
    return (f"redis+sentinel://{userinfo}{','.join(hosts)}{tail}"
            + (f"?{urlencode(others)}" if others else ""))


@dataclass(frozen=True, slots=True)
class Deployment:
    """A Sentinel or Cluster URL taken apart (the password is there: never log this)."""

    kind: str  # 'sentinel' or 'cluster'
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    master_name: str  # Sentinel only
    db: int
    username: str | None
    password: str | None
    params: tuple[tuple[str, str], ...]  # the query: connection and sentinel_* options


def deployment(url: str) -> Deployment:
    """Take a redis+sentinel:// or redis+cluster:// URL apart; ValueError says why not."""
    from urllib.parse import unquote

    which = kind(url)
    if which not in ("sentinel", "cluster"):
        raise ValueError("not a Sentinel or Cluster URL")
    scheme, authority, rest = _split(url)
    userinfo, _, hostlist = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    hosts = []
    default_port = 26379 if which == "sentinel" else 6379
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        host = host.strip("[]")
        if not host:
            raise ValueError(f"a host is missing in the list {hostlist!r}" if hostlist else
                             "no host is given (host1:port,host2:port after the //)")
        if port and not port.isdigit():
            raise ValueError(f"port {port!r} of host {host} is not a number")
        hosts.append((host, int(port) if port else default_port))
    path, _, query = rest.partition("?")
    segments = [segment for segment in path.split("/") if segment]
    name, db = "", "0"
    if which == "sentinel":
        if not segments:
            raise ValueError("the master's name is missing: redis+sentinel://HOST:PORT,.../"
                             "MASTER_NAME[/DB] (the name the sentinels monitor)")
        name = unquote(segments[0])
        db = segments[1] if len(segments) > 1 else "0"
        extra = segments[2:]
    else:
        db = segments[0] if segments else "0"
        extra = segments[1:]
        if db != "0":
            raise ValueError("a Redis Cluster has database 0 only: leave the /DB out")
    if extra or not db.isdigit():
        raise ValueError("the path must be /MASTER_NAME[/DB] for Sentinel, nothing or /0 "
                         "for Cluster")
    params = tuple(parse_qsl(query.partition("#")[0], keep_blank_values=True))
    return Deployment(which, scheme.startswith("rediss"), tuple(hosts), name, int(db),
                      unquote(user) or None, unquote(password) if colon else None, params)


def complaint(url: str) -> str | None:
    """Why `url` cannot be used as it is (never quoting a secret), or None."""
    if url.startswith(_CELERY_SENTINEL):
        return ("a Celery-style sentinel:// URL needs every part to start with sentinel:// "
                "and ?master_name=NAME; or write redis+sentinel://HOST:PORT,HOST:PORT/NAME")
    if not url.startswith(SCHEMES):
        return ("must start with redis://, rediss://, unix://, embedded://, "
                "redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://")
    if url.startswith("embedded://"):
        return None
    if kind(url) in ("sentinel", "cluster"):
        try:
            deployment(url)
        except ValueError as exc:
            return str(exc)
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

    classes = {"rediss": rc.SSLConnection, "unix://": rc.UnixDomainSocketConnection}
    connection = next((cls for prefix, cls in classes.items() if url.startswith(prefix)),
                      rc.Connection)
    names = set(rc.URL_QUERY_ARGUMENT_PARSERS) | {"db", "password", "username"}
    if kind(url) == "sentinel":
        names |= SENTINEL_PARAMETERS
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
    if kind(url) in ("sentinel", "cluster"):
        try:
            found = deployment(url)
        except ValueError:
            return Where(user, host, "0")
        hosts = ",".join(f"{name}:{port}" for name, port in found.hosts)
        server = (f"master {found.master_name!r} of sentinels {hosts}"
                  if found.kind == "sentinel" else f"cluster {hosts}")
        return Where(user, server, str(found.db))
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
