"""The process's producer settings and Redis client (what `configure()` sets).

Shared by the producer (api/producer.py) and by results (api/result.py), so
that neither needs the other to find Redis. Nothing connects at import time:
the client is made on first use, again when the configured URL changed, and
again after a fork (an inherited client shares the parent's sockets).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from supervisor.broker.connection import connect
from supervisor.config import Config, load_config

overrides: dict[str, Any] = {}  # configure()'s options; they win over the environment
_lock = threading.Lock()
_client: tuple[str, redis.Redis] | None = None  # (URL, client)


def override(options: dict[str, Any]) -> None:
    """Add options set in code; validated now, with an error naming the option."""
    global _client
    with _lock:
        overrides.update(options)
        load_config(overrides)
        _client = None


def settings() -> Config:
    """The producer's configuration: `configure()` values > environment > defaults."""
    return load_config(overrides)


def client(config: Config | None = None) -> redis.Redis:
    """The process's client for `config`'s URL (the current settings' if none given)."""
    url = (config or settings()).redis_url
    known = _client
    if known is not None and known[0] == url:
        return known[1]
    return _connect(url)


def _connect(url: str) -> redis.Redis:
    global _client
    with _lock:
        if _client is None or _client[0] != url:
            _client = (url, connect(url))
        return _client[1]


def _forget_after_fork() -> None:
    # A fresh lock too: another thread may have held it at the fork.
    global _client, _lock
    _client = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
