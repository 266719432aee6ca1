"""A Redis client made on first use, once per process, safe to call from many threads.

The task modules of the tests open their ledger lazily: the nodes import
them before forking, and a connection made in the master would be shared by
every child. Made without a lock, two job threads of a `--concurrency` child
could each make a client at once; the one that lost the race was garbage
collected while its thread still used it, and redis-py's `Redis.__del__`
closes the client's pool, so that thread's command failed ("Bad file
descriptor", "Connection closed by server"). The job then failed and was
retried, and a chaos run on CI read the retry as an unexplained duplicate.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis


class LazyRedis:
    """Call it for this process's client of `url()` (made on the first call)."""

    def __init__(self, url: Callable[[], str], **options: Any) -> None:
        self._url = url
        self._options = options
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._pid = 0

    def __call__(self) -> redis.Redis:
        client, pid = self._client, os.getpid()
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is None or self._pid != pid:
                self._client = redis.Redis.from_url(self._url(), **self._options)
                self._pid = pid
            return self._client
