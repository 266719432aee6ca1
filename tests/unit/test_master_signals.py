"""SignalCapture: handlers only record; the loop wakes early and drains in order."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from supervisor.master.signals import SignalCapture


@pytest.fixture
def capture() -> Iterator[SignalCapture]:
    capture = SignalCapture([signal.SIGUSR2, signal.SIGWINCH])
    capture.install()
    yield capture
    capture.restore()


def test_records_signals_in_order(capture: SignalCapture) -> None:
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGWINCH)
    capture.wait(5.0)
    assert capture.pending() == [signal.SIGUSR2, signal.SIGWINCH]
    assert capture.pending() == []


@pytest.mark.timeout(30)
def test_a_signal_wakes_the_wait_early(capture: SignalCapture) -> None:
    done = threading.Event()
    timer = threading.Timer(0.05, lambda: (os.kill(os.getpid(), signal.SIGUSR2), done.set()))
    timer.start()
    capture.wait(300.0)  # returns on the signal; the 30 s test timeout fails a full wait
    timer.join()
    assert done.is_set()
    assert capture.pending() == [signal.SIGUSR2]


@pytest.mark.timeout(30)
def test_wait_returns_at_once_when_something_is_pending(capture: SignalCapture) -> None:
    os.kill(os.getpid(), signal.SIGUSR2)
    capture.wait(300.0)
    capture.wait(300.0)
    assert capture.pending() == [signal.SIGUSR2]


def test_restore_puts_back_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR2)
    capture = SignalCapture([signal.SIGUSR2])
    capture.install()
    assert signal.getsignal(signal.SIGUSR2) != before
    capture.restore()
    assert signal.getsignal(signal.SIGUSR2) == before
    assert signal.set_wakeup_fd(-1) == -1
