"""One asyncio event loop per child, on its own thread, for `async def` tasks.

Started the first time an `async def` job arrives, so a child that only runs
sync tasks has no loop and no extra thread. uvloop is used when installed
(a bonus, not a requirement).

A coroutine that blocks the loop (`time.sleep` inside `async def`, a sync
HTTP call) silently stalls every other async job of the child. A small
watchdog thread sees the loop's own ticker fall behind and logs the name of
the task running on the loop at that moment (the job's task and id), once
per stall.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("supervisor.worker")

TICK = 0.05  # seconds between the loop's ticks (what the watchdog measures)
LAG_THRESHOLD = 0.25  # seconds the loop may be late before the stall is logged


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


class EventLoopThread:
    """An event loop running forever on a daemon thread (a child leaves by os._exit)."""

    def __init__(self, lag_threshold: float = LAG_THRESHOLD) -> None:
        self.lag_threshold = lag_threshold
        self.loop = _new_loop()
        self.ticked = time.monotonic()
        self.stalls = 0  # stalls seen (each logged once)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor-loop", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name="supervisor-loop-lag",
                                          daemon=True)
        self._thread.start()
        self._watchdog.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._tick)
        self.loop.run_forever()

    def _tick(self) -> None:
        self.ticked = time.monotonic()
        if not self._stop.is_set():
            self.loop.call_later(TICK, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(TICK):
            late = time.monotonic() - self.ticked - TICK
            if late <= self.lag_threshold:
                reported = False
                continue
            if reported:
                continue
            reported = True
            self.stalls += 1
            running = asyncio.current_task(self.loop)  # the task holding the loop right now
            name = running.get_name() if running is not None else "(no task: a callback)"
            log.warning("event loop blocked for %.2fs by %s: an async def task must not "
                        "block (time.sleep, sync I/O); its neighbours wait meanwhile",
                        late, name)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule `coro` on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start_all(self, jobs: list[tuple[Coroutine[Any, Any, Any], Any]],
                  ended: Callable[[Any, asyncio.Task[Any]], None]) -> None:
        """Start each coroutine as a task of the loop, from any thread, in one wake-up of
        the loop; `ended(tag, task)` is called on the loop's thread as each ends."""
        def start() -> None:
            for coro, tag in jobs:
                self.loop.create_task(coro).add_done_callback(functools.partial(ended, tag))

        self.loop.call_soon_threadsafe(start)

    def stop(self) -> None:
        self._stop.set()
        self.loop.call_soon_threadsafe(self.loop.stop)
