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


class _Looked(_Sentinel):
    """A sentinel as a watcher's first look sees it: the master's address and its flags."""

    def __init__(self, answer: tuple[str, int] | None, flags: Any) -> None:
        super().__init__(answer)
        self.flags = flags

    def sentinel_master(self, name: str) -> dict[str, Any]:
        if isinstance(self.flags, Exception):
            raise self.flags
        return {"name": name, "flags": self.flags}


def test_the_failing_over_flag_is_read_in_either_protocol() -> None:
    assert sentinel.failing_over({"flags": "master,failover_in_progress"})  # RESP2: a string
    assert sentinel.failing_over({"flags": {"master", "failover_in_progress"}})  # RESP3: a set
    assert not sentinel.failing_over({"flags": "master"})
    assert not sentinel.failing_over(None)


def test_a_first_look_during_a_failover_pauses_the_writes(failover: Any) -> None:
    # A process that started after +try-failover: the leader's flag tells it instead.
    assert not failover.under_way()
    sentinel.first_look(_Looked(("10.0.0.1", 6379), "master,failover_in_progress"), failover)
    assert failover.under_way()
    with pytest.raises(sentinel.MasterNotFoundError):
        failover.check_not_under_way("mymaster")
    failover.event("+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380")
    assert not failover.under_way() and failover.known == ("10.0.0.2", 6380)


def test_a_first_look_elsewhere_or_not_allowed_pauses_nothing() -> None:
    fresh = sentinel.Failover("mymaster", _Pool())  # type: ignore[arg-type]
    sentinel.first_look(_Looked(("10.0.0.1", 6379), "master"), fresh)
    assert not fresh.under_way() and fresh.known == ("10.0.0.1", 6379)  # filled in
    denied = sentinel.redis.exceptions.ResponseError("NOPERM this user has no permissions")
    other = sentinel.Failover("mymaster", _Pool())  # type: ignore[arg-type]
    sentinel.first_look(_Looked(("10.0.0.1", 6379), denied), other)
    assert not other.under_way() and other.known == ("10.0.0.1", 6379)


def test_a_first_connection_waits_for_every_watcher_to_look(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    fresh = sentinel.Failover("mymaster", _Pool(), watchers=2)  # type: ignore[arg-type]
    assert not fresh.looked.is_set()
    fresh.watcher_looked()
    assert not fresh.looked.is_set()  # the other one may be the failover's leader

    def leader_looks() -> None:
        sentinel.first_look(_Looked(("10.0.0.1", 6379), "master,failover_in_progress"), fresh)
        fresh.watcher_looked()

    threading.Timer(0.2, leader_looks).start()
    lookup = sentinel._MasterLookup(_Manager(("10.0.0.1", 6379)), fresh)  # type: ignore[arg-type]
    # Without the wait this would name the old master, which still says master to ROLE.
    with pytest.raises(sentinel.MasterNotFoundError, match="under way"):
        lookup("mymaster")
    assert fresh.looked.is_set()
    monkeypatch.setattr(sentinel, "FIRST_LOOK_WAIT", 0.01)
    lonely = sentinel.Failover("mymaster", _Pool(), watchers=1)  # type: ignore[arg-type]
    assert sentinel._MasterLookup(_Manager(("10.0.0.1", 6379)), lonely)(  # type: ignore[arg-type]
        "mymaster") == ("10.0.0.1", 6379)  # a watcher that never looks delays, never blocks
