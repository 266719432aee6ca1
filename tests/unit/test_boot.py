"""A worker's wait for Redis at boot, and what the master makes of it (fakes, no Redis)."""

from __future__ import annotations

import os
import signal

import pytest

from supervisor.broker.refusals import Refusal
from supervisor.config import Config
from supervisor.errors import EXIT_OK, EXIT_REDIS_UNAVAILABLE, EXIT_USAGE, RedisRefused
from supervisor.fork.status import ChildPhase, ChildStatus
from supervisor.master.startup import Startup
from supervisor.worker.boot import await_redis

UNREACHABLE = Refusal(False, "cannot reach Redis at redis://h:1/0: Connection refused")


def probes(*answers: Refusal | None):  # type: ignore[no-untyped-def]
    queue = list(answers)
    return lambda url, queues: queue.pop(0)


def test_waits_while_unreachable_and_shows_why_in_the_status_block() -> None:
    status = ChildStatus()
    pauses: list[float] = []
    assert await_redis(Config(), status, probe=probes(UNREACHABLE, UNREACHABLE, None),
                       sleep=pauses.append)
    snap = status.read()
    assert snap.phase is ChildPhase.WAITING and snap.task == UNREACHABLE.text
    assert not snap.booted and sum(pauses) > 0


def test_a_permanent_refusal_raises_at_once() -> None:
    with pytest.raises(RedisRefused, match="wrong password"):
        await_redis(Config(), ChildStatus(), probe=probes(Refusal(True, "wrong password")),
                    sleep=lambda seconds: None)


def test_a_stop_signal_ends_the_wait() -> None:
    def stop_then_sleep(seconds: float) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets a flag

    previous = signal.getsignal(signal.SIGTERM)
    assert not await_redis(Config(), ChildStatus(), probe=lambda url, queues: UNREACHABLE,
                           sleep=stop_then_sleep)
    assert signal.getsignal(signal.SIGTERM) == previous  # restored


def test_a_stop_signal_during_a_successful_probe_is_not_lost() -> None:
    def probe_while_stopped(url: str, queues: tuple[str, ...]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. the master retires a booting child
        return None

    assert not await_redis(Config(), ChildStatus(), probe=probe_while_stopped)


def test_once_the_pool_served_an_outage_does_not_hold_a_child_back() -> None:
    assert await_redis(Config(), ChildStatus(), pool_served=True, probe=probes(UNREACHABLE),
                       sleep=lambda seconds: pytest.fail("waited"))  # type: ignore[arg-type]
    with pytest.raises(RedisRefused):  # but still no crash loop on what cannot be fixed
        await_redis(Config(), ChildStatus(), pool_served=True,
                    probe=probes(Refusal(True, "NOPERM")))


class Pool:
    def __init__(self) -> None:
        self.why, self.up = "", 0

    def waiting(self) -> str:
        return self.why

    def workers_up(self) -> int:
        return self.up


def test_startup_says_the_wait_once_and_the_exit_code_says_if_it_ever_served(
        caplog: pytest.LogCaptureFixture) -> None:
    startup, pool = Startup(), Pool()
    pool.why = UNREACHABLE.text
    for _ in range(5):
        startup.observe(pool)
    assert caplog.text.count("workers wait for Redis") == 1
    assert startup.status().startswith("waiting for Redis: cannot reach")
    assert startup.exit_code(EXIT_OK) == EXIT_REDIS_UNAVAILABLE
    assert startup.exit_code(EXIT_USAGE) == EXIT_USAGE
    pool.why, pool.up = "", 2
    startup.observe(pool)
    assert startup.status() == "" and "Redis answers again" in caplog.text
    assert startup.exit_code(EXIT_OK) == EXIT_OK
    assert startup.served  # children forked from now on boot through an outage


def test_a_child_forked_after_the_pool_served_is_told_so_in_its_context() -> None:
    from master_fakes import FakeOps, FakeStatus

    from supervisor.fork.context import ChildContext
    from supervisor.master.pool import Pool

    ops, seen = FakeOps(), []
    pool = Pool(ops, FakeStatus)  # type: ignore[arg-type]

    def target(context: ChildContext) -> None:
        seen.append(context.pool_served)

    first = pool.spawn(target, Config(), 1, 1, 0.0)
    ops.targets[first.pid]()  # what the forked child would run
    pool.served = True
    second = pool.spawn(target, Config(), 2, 1, 0.0)
    ops.targets[second.pid]()
    assert seen == [False, True]
