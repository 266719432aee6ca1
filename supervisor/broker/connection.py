"""Opening Redis connections from a URL, including `embedded://[DIR]`."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry

import supervisor.redis_url as urls
from supervisor.broker import embedded
from supervisor.redis_url import describe  # noqa: F401 - callers import it from here

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
    # RedisCluster gave up after its own redirects ("TTL exhausted"): a multi-key script
    # whose slot is being migrated answers TRYAGAIN until the migration ends.
    redis.exceptions.ClusterError,
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


def connect_async(url: str, *, socket_timeout: float = 10.0) -> Any:
    """The redis.asyncio client for `url`, set up as connect() sets up the sync one
    (for producers running on an event loop: FastAPI, aiohttp): the current master
    under Sentinel (broker/async_sentinel.py), a RedisCluster that follows MOVED and
    ASK on a cluster."""
    import redis.asyncio  # only where an async producer is used: it loads asyncio
    import redis.asyncio.retry

    options: dict[str, Any] = dict(
        decode_responses=True,
        encoding_errors="surrogateescape",
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        retry_on_error=[],
    )
    which = urls.kind(url)
    if which == "sentinel":
        from supervisor.broker.async_sentinel import async_master_client

        return async_master_client(url, **options)
    if which == "cluster":
        from supervisor.broker.async_cluster import async_cluster_client
        from supervisor.broker.cluster import cluster_options

        found = urls.deployment(url)
        return async_cluster_client(list(found.hosts), **cluster_options(found, options))
    return redis.asyncio.Redis.from_url(resolve_url(url), **options)
