"""Signal capture for the master loop.

The handlers only record: the signal number goes into a `SimpleQueue` (whose
`put` is safe to call from a signal handler) and the C-level handler writes a
byte to a self-pipe registered with `signal.set_wakeup_fd`, which wakes the
loop out of its `select()` at once. Nothing is logged and nothing is decided
inside a handler; the loop drains the queue and dispatches each signal from
an explicit table (see `Master.signal_table`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from queue import Empty, SimpleQueue
from types import FrameType
from typing import Any


class SignalCapture:
    """Records the given signals until the loop asks for them."""

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(signals)
        self._queue: SimpleQueue[int] = SimpleQueue()
        self._read_fd = -1
        self._write_fd = -1
        self._saved: dict[int, Any] = {}
        self._saved_wakeup = -1

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._queue.put(signum)  # nothing else: no logging, no decisions

    def install(self) -> None:
        """Create the self-pipe and install the handlers (main thread only)."""
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._saved_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in self.signals:
            self._saved[sig] = signal.signal(sig, self._record)

    def restore(self) -> None:
        """Put back the previous handlers and close the pipe."""
        for sig, handler in self._saved.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(self._saved_wakeup)
        self.close_fds()

    def close_fds(self) -> None:
        """Close the pipe; also what a forked child calls to drop the master's copy."""
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, or less if a signal arrives."""
        if not self._queue.empty() or self._read_fd < 0:
            return
        try:
            ready, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout))
        except InterruptedError:  # pragma: no cover - PEP 475 retries select itself
            return
        if ready:
            self._drain_pipe()

    def _drain_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read_fd, 4096):
                pass

    def pending(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        received: list[int] = []
        while True:
            try:
                received.append(self._queue.get_nowait())
            except Empty:
                return received
