"""Opening Redis connections from a URL, including `embedded://[DIR]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry

import supervisor.redis_url as urls
from supervisor.broker import embedded
from supervisor.errors import ConfigError
from supervisor.redis_url import describe  # noqa: F401 - callers import it from here

if TYPE_CHECKING:
    import redis.asyncio

# What "Redis is away for a moment" looks like: worth retrying with backoff.
# (Wrong credentials are a ConnectionError too, but not transient: see
# retry.call_with_reconnect, which never retries them.)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,  # a replica promoted during failover
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # a cluster master failing over (also MASTERDOWN)
    ConnectionRefusedError,
)


def resolve_url(url: str) -> str:
    """Turn `embedded://DIR` into the unix socket of its (started) server."""
    if url.startswith("embedded://"):
        sock = embedded.ensure_server(embedded.parse_dir(url))
        return f"unix://{sock}"
    return url


def connect(url: str, *, socket_timeout: float = 10.0) -> redis.Redis:
    """A client for `url`. Connects lazily; starts the embedded server if needed.

    redis-py's own silent retries are switched off: our callers retry with
    tenacity where a retry is safe (idempotent scripts), and must see the
    error where it is not.
    """
    options: dict[str, Any] = dict(
        decode_responses=True,
        # Bytes that are not UTF-8 (an entry someone wrote with another client)
        # decode losslessly instead of failing the whole read: the worker then
        # dead-letters that one message as invalid and the rest flows.
        encoding_errors="surrogateescape",
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        retry=RedisRetry(NoBackoff(), 0),
        retry_on_error=[],
    )
    which = urls.kind(url)
    if which == "sentinel":
        from supervisor.broker.sentinel import master_client

        return master_client(url, **options)
    if which == "cluster":
        from supervisor.broker.cluster import cluster_client

        return cluster_client(url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(resolve_url(url), **options)


def connect_async(url: str, *, socket_timeout: float = 10.0) -> redis.asyncio.Redis:
    """The redis.asyncio client for `url`, set up as connect() sets up the sync one
    (for producers running on an event loop: FastAPI, aiohttp)."""
    if urls.kind(url) != "single":
        # Not built yet: the topology layer (broker/sentinel.py, broker/cluster.py)
        # follows failovers and slots for the sync clients only.
        raise ConfigError(
            f"the async producer (adelay, aapply_async, aenqueue_many, aget) does not "
            f"support {urls.kind(url)} URLs yet; call the sync API off the loop instead, "
            "e.g. await asyncio.to_thread(task.delay, ...)")
    import redis.asyncio  # only where an async producer is used: it loads asyncio
    import redis.asyncio.retry

    return redis.asyncio.Redis.from_url(
        resolve_url(url),
        decode_responses=True,
        encoding_errors="surrogateescape",
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        retry_on_error=[],
    )
