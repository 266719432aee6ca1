"""pytest fixtures for users' tests (a pytest plugin, loaded through its entry point).

    def test_add(supervisor_drain):
        result = add.delay(2, 3)
        supervisor_drain()
        assert result.get() == 5

- `supervisor_redis_url` (session): the Redis the tests use. By default an
  embedded server (the `embedded` extra, or a redis-server on PATH) in a
  temporary directory, started on first use and stopped at the end of the
  session. Set SUPERVISOR_TEST_REDIS_URL to use a server of your own, or
  override this fixture in your conftest.py.
- `supervisor_testing` (each test): the producer configured for that
  Redis, the database emptied first (FLUSHDB: give a server kept for tests),
  the configuration of the code under test restored afterwards. It is a
  `Testing` object: `.drain()`, `.dead_letters(queue)`, `.redis_url`.
- `supervisor_drain`: `supervisor_testing.drain`, for tests that need nothing else.

Nothing is imported or started until a test asks for one of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ENV_URL = "SUPERVISOR_TEST_REDIS_URL"


class Testing:
    """What a test gets from `supervisor_testing`."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def drain(self, *args: Any, **kwargs: Any) -> Any:
        """`supervisor.testing.drain` (same arguments)."""
        from supervisor.testing import drain

        return drain(*args, **kwargs)

    def dead_letters(self, queue: str = "default") -> list[dict[str, Any]]:
        from supervisor.testing import dead_letters

        return dead_letters(queue)


@pytest.fixture(scope="session")
def supervisor_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    from supervisor.broker.embedded import ensure_server, stop_server

    # A short path: a unix socket path has a limit of ~100 bytes.
    folder = Path(tmp_path_factory.mktemp("sv-redis", numbered=True))
    ensure_server(folder)
    try:
        yield f"embedded://{folder}"
    finally:
        stop_server(folder, wait=5)


@pytest.fixture
def supervisor_testing(supervisor_redis_url: str) -> Iterator[Testing]:
    from supervisor.api import middleware, producer, session

    saved = dict(session.overrides)
    saved_middleware = middleware.registered()
    producer.configure(redis_url=supervisor_redis_url)
    session.client().flushdb()
    try:
        yield Testing(supervisor_redis_url)
    finally:
        session.overrides.clear()
        session.overrides.update(saved)
        middleware.use(saved_middleware)
        producer.configure()


@pytest.fixture
def supervisor_drain(supervisor_testing: Testing) -> Callable[..., Any]:
    return supervisor_testing.drain
