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


class _Sentinel:
    def __init__(self, answer: tuple[str, int] | None) -> None:
        self.answer = answer

    def sentinel_get_master_addr_by_name(self, name: str) -> tuple[str, int] | None:
        return self.answer


class _Manager:
    def __init__(self, *answers: tuple[str, int] | None) -> None:
        self.sentinels = [_Sentinel(answer) for answer in answers]


def test_a_sentinel_that_has_not_learnt_of_a_switch_is_not_believed(
        failover: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = ("10.0.0.1", 6379), ("10.0.0.2", 6380)
    stale = _Manager(old, old, new)  # the leader's news reaches the others seconds later
    lookup = sentinel._MasterLookup(stale, failover)  # type: ignore[arg-type]
    assert lookup("mymaster") == old  # no switch seen: the sentinels are believed
    failover.event("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380")
    assert lookup("mymaster") == new  # the one sentinel that agrees with the event
    assert sentinel._MasterLookup(_Manager(old, None), failover)("mymaster") == new  # none does
    now = sentinel.time.monotonic()
    monkeypatch.setattr(sentinel.time, "monotonic", lambda: now + sentinel.EVENT_TRUST + 1)
    assert sentinel._MasterLookup(_Manager(old), failover)("mymaster") == old  # converged


def test_the_async_lookup_decides_the_same(failover: Any) -> None:
    import asyncio

    from supervisor.broker.async_sentinel import _AsyncMasterLookup

    class _AsyncSentinel(_Sentinel):
        async def sentinel_get_master_addr_by_name(  # type: ignore[override]
                self, name: str) -> tuple[str, int] | None:
            return self.answer

    manager = _Manager()
    manager.sentinels = [_AsyncSentinel(("10.0.0.1", 6379)), _AsyncSentinel(("10.0.0.2", 6380))]
    failover.event("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380")
    lookup = _AsyncMasterLookup(manager, failover)  # type: ignore[arg-type]
    assert asyncio.run(lookup("mymaster")) == ("10.0.0.2", 6380)
