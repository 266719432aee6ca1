"""The Sentinel watcher's reading of the sentinels' events (sentinel.Failover)."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.broker import direct, sentinel


class _Pool:
    def __init__(self) -> None:
        self.dropped = 0

    def disconnect(self, inuse_connections: bool = True) -> None:
        self.dropped += 1


@pytest.fixture
def failover() -> Any:
    pool = _Pool()
    watched = sentinel.Failover("mymaster", pool)  # type: ignore[arg-type]
    watched.test_pool = pool  # type: ignore[attr-defined]
    watched.moved(("10.0.0.1", 6379), promoted=False)  # what a sentinel said on subscribing
    return watched


def test_writes_pause_from_try_failover_to_the_promotion(failover: Any) -> None:
    before = direct.fork_count()
    failover.event("+try-failover", "master mymaster 10.0.0.1 6379")
    assert failover.under_way() and failover.test_pool.dropped == 1
    assert direct.fork_count() == before + 1  # every hot-path connection is made again
    failover.event("+promoted-slave", "slave 10.0.0.2:6380 10.0.0.2 6380 @ mymaster 10.0.0.1 6379")
    assert not failover.under_way() and failover.known == ("10.0.0.2", 6380)
    assert failover.test_pool.dropped == 2
    # The later +switch-master names the same server: nothing is dropped again.
    failover.event("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380")
    assert failover.test_pool.dropped == 2


def test_an_abort_ends_the_pause_and_other_masters_are_ignored(failover: Any) -> None:
    failover.event("+try-failover", "master othermaster 10.0.0.9 6379")
    assert not failover.under_way()
    failover.event("+try-failover", "master mymaster 10.0.0.1 6379")
    failover.event("-failover-abort-no-good-slave", "master mymaster 10.0.0.1 6379")
    assert not failover.under_way() and failover.known == ("10.0.0.1", 6379)
    failover.event("+switch-master", "othermaster 10.0.0.9 6379 10.0.0.8 6379")
    assert failover.known == ("10.0.0.1", 6379)


def test_the_pause_is_bounded(failover: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    failover.event("+try-failover", "master mymaster 10.0.0.1 6379")
    now = sentinel.time.monotonic()
    monkeypatch.setattr(sentinel.time, "monotonic", lambda: now + sentinel.PAUSE_MAX + 1)
    assert not failover.under_way()


def test_a_resubscribing_watcher_does_not_end_a_pause(failover: Any) -> None:
    failover.event("+try-failover", "master mymaster 10.0.0.1 6379")
    failover.moved(("10.0.0.1", 6379), promoted=False)
    assert failover.under_way()
