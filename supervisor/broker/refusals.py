"""What a Redis error means for whoever met it: wait, give up for good, or not ours to judge.

Three kinds of trouble look alike in redis-py's exceptions and need opposite
answers:

- **permanent** (a restart cannot fix it): wrong password, a user without the
  permissions (NOPERM, "HELLO must be called with the client already
  authenticated"), a database index the server does not have. A pool stops
  with EXIT_REDIS_REFUSED instead of crash-looping;
- **write refused** for now (out of memory under `noeviction`, a failed
  snapshot with `stop-writes-on-bgsave-error`, too few replicas, a read-only
  replica): the server is up but will not take the write;
- **unreachable** (connection refused, timeouts, loading): wait and retry.

Every text names user, server and database (redis_url.where), never the
password, and says what to do in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

import supervisor.redis_url as urls
from supervisor.broker.error_codes import code_of
from supervisor.redis_url import describe, where


@dataclass(frozen=True, slots=True)
class Refusal:
    """One Redis problem, said once: `permanent` ones end a pool at start."""

    permanent: bool
    text: str

    def __str__(self) -> str:
        return self.text


# Error codes of a server that is up but refuses writes for now: (its state, what to do).
_WRITE_REFUSED = {
    "OOM": ("is out of memory (used memory over 'maxmemory', maxmemory-policy noeviction)",
            "free memory or raise maxmemory"),
    "MISCONF": ("stops writes because it cannot save its snapshot "
                "(stop-writes-on-bgsave-error)", "see the Redis log"),
    "NOREPLICAS": ("has fewer replicas than min-replicas-to-write", "check its replicas"),
    "READONLY": ("is a read-only replica", "point the URL at the primary"),
}
_NO_DATABASE = ("DB index is out of range", "invalid DB index")


def write_refusal(exc: BaseException, url: str, outcome: str = "it refused the write"
                  ) -> Refusal | None:
    """The sentence for a write Redis refused for now, or None if `exc` is something else."""
    if not isinstance(exc, redis.exceptions.ResponseError):
        return None
    known = _WRITE_REFUSED.get(code_of(exc))
    if known is None:
        return None
    state, advice = known
    return Refusal(False, f"Redis at {where(url).server} {state}: {outcome}; {advice}")


def classify(exc: BaseException, url: str) -> Refusal | None:
    """What `exc` means at start, or None when it is not a Redis problem."""
    place = where(url)
    said = str(exc).rstrip(". ")
    if isinstance(exc, redis.exceptions.AuthenticationError
                  | redis.exceptions.AuthenticationWrongNumberOfArgsError):
        return Refusal(True, f"Redis refused {place}: {said}; check the user and password "
                             "(in the URL, --redis-password-file or SUPERVISOR_REDIS_PASSWORD)")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return Refusal(True, f"Redis refused a command to {place}: {said}; grant the ACL "
                             "rule of the README's 'Redis ACL' section")
    if isinstance(exc, redis.exceptions.ResponseError) and any(
            text in str(exc) for text in _NO_DATABASE):
        return Refusal(True, f"Redis at {place.server} has no database {place.db} ({said}); "
                             "check the database number at the end of the URL")
    refused = write_refusal(exc, url)
    if refused is not None:
        return refused
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
                  | OSError):
        return Refusal(False, f"cannot reach Redis at {describe(url)}: {exc}")
    if isinstance(exc, redis.exceptions.RedisError):
        return Refusal(False, f"Redis at {place.server} answered {type(exc).__name__}: {exc}")
    return None


def refusing_writes(client: redis.Redis, url: str) -> str | None:
    """Whether the server refuses writes right now, read from INFO (never a write: `status`
    is read-only), in the words of `write_refusal`; None when it takes writes.

    While Redis refuses writes the workers cannot publish their own state, so what
    `status` shows of them is the last snapshot before the refusal: this is the line
    that says why it is getting old."""
    try:
        info = client.info()
    except redis.exceptions.NoPermissionError:
        return None  # the README's least ACL denies INFO (@dangerous): nothing to tell
    code = None
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if limit and used >= limit and info.get("maxmemory_policy") == "noeviction":
        code = "OOM"
    elif info.get("rdb_last_bgsave_status") == "err" and _config(client,
            "stop-writes-on-bgsave-error", "yes") == "yes":
        code = "MISCONF"
    elif info.get("role") == "slave":
        code = "READONLY"
    elif int(info.get("min_slaves_good_slaves", 1 << 30)) < int(_config(
            client, "min-replicas-to-write", "0")):
        code = "NOREPLICAS"
    if code is None:
        return None
    state, advice = _WRITE_REFUSED[code]
    return (f"Redis at {where(url).server} {state}: workers wait and keep finished jobs' "
            f"outcomes, producers get WriteRefused; {advice}")


def _config(client: redis.Redis, name: str, default: str) -> str:
    """A server setting, or `default` when CONFIG is not allowed (the README's ACL denies it)."""
    try:
        return str(client.config_get(name).get(name, default))
    except redis.exceptions.ResponseError:  # NoPermissionError included
        return default


def wrong_server(client: Any, url: str) -> Refusal | None:
    """A plain redis:// URL aimed at a sentinel, a replica or a cluster node: which URL to use.

    Such a server half works (reads answer, writes go astray or fail later),
    so it is refused at start, naming the URL form that fits it.
    """
    if urls.kind(url) != "single":
        return None
    return refusal_of_hello(client.execute_command(*hello_command(client)), url)


async def awrong_server(client: Any, url: str) -> Refusal | None:
    """wrong_server for a redis.asyncio client (the async producer)."""
    if urls.kind(url) != "single":
        return None
    return refusal_of_hello(await client.execute_command(*hello_command(client)), url)


def hello_command(client: Any) -> tuple[str, int]:
    """HELLO, not ROLE or INFO: it needs no ACL permission (ROLE and INFO are in
    @dangerous, which the least ACL leaves out), and says role and mode. With the
    connection's own protocol (redis-py's default is RESP3): HELLO with another one
    would switch the connection under its parser."""
    from redis.utils import DEFAULT_RESP_VERSION

    protocol = client.connection_pool.connection_kwargs.get("protocol") or DEFAULT_RESP_VERSION
    return "HELLO", int(protocol)


def refusal_of_hello(hello: Any, url: str) -> Refusal | None:
    """What HELLO's reply says of the server behind a plain URL (see wrong_server)."""
    if isinstance(hello, list):  # RESP2: a flat list of names and values
        hello = dict(zip(hello[::2], hello[1::2], strict=False))
    mode, role = str(hello.get("mode", "")), str(hello.get("role", ""))
    place = where(url).server
    if mode == "sentinel":
        return Refusal(True, f"Redis at {place} is a Sentinel, not a data server: use "
                             f"redis+sentinel://{place}[,OTHER_SENTINEL:PORT...]/MASTER_NAME "
                             "(SENTINEL MASTERS there lists the names it monitors)")
    if mode == "cluster":
        return Refusal(True, f"Redis at {place} is a Redis Cluster node: use "
                             f"redis+cluster://{place}[,OTHER_NODE:PORT...]")
    if role in ("replica", "slave"):
        return Refusal(True, f"Redis at {place} is a read-only replica: point the URL at the "
                             "primary, or, if Sentinel manages it, use "
                             "redis+sentinel://SENTINEL:26379,.../MASTER_NAME")
    return None


def probe(url: str, queues: tuple[str, ...] | list[str]) -> Refusal | None:
    """Do what a worker does first (connect, authenticate, select the database, create the
    queues' consumer groups, load a script); None once Redis serves, else why not."""
    from supervisor.broker import scripts
    from supervisor.broker.connection import connect
    from supervisor.broker.streams import Broker
    from supervisor.errors import BrokerUnavailable

    try:
        client = connect(url, socket_timeout=5.0)
    except BrokerUnavailable as exc:  # an embedded:// server that cannot start
        return Refusal(False, str(exc))
    try:
        wrong = wrong_server(client, url)
        if wrong is not None:
            return wrong
        Broker(client).ensure_groups(queues)
        client.script_load(scripts.source("settle"))  # the ACL allows scripts too
        return None
    except Exception as exc:  # noqa: BLE001 - classified; anything else is re-raised
        refusal = classify(exc, url)
        if refusal is None:
            raise
        return refusal
    finally:
        client.close()
