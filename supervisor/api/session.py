"""The process's producer settings and Redis client (what `configure()` sets).

Shared by the producer (api/producer.py) and by results (api/result.py), so
that neither needs the other to find Redis. Nothing connects at import time:
the client is made on first use, and again after a fork (an inherited client
shares the parent's sockets).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from supervisor.broker.connection import connect
from supervisor.config import Config, load_config

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_client: redis.Redis | None = None


def override(options: dict[str, Any]) -> None:
    """Options set in code; they win over the environment. Validated now."""
    global _client
    with _lock:
        _overrides.update(options)
        load_config(_overrides)  # a clear error naming the option, at once
        _client = None


def settings() -> Config:
    """The producer's configuration: `configure()` values > environment > defaults."""
    return load_config(_overrides)


def client(config: Config | None = None) -> redis.Redis:
    """The process's client (made on first use, for `config` or the current settings)."""
    found = _client
    if found is not None:
        return found
    return _connect(config)


def _connect(config: Config | None) -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = connect((config or settings()).redis_url)
        return _client


def _forget_after_fork() -> None:
    # A fresh lock too: another thread may have held it at the fork.
    global _client, _lock
    _client = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
