"""What the master says about its pool getting to work: waiting for Redis, and whether it served.

Children that cannot reach Redis at boot wait (boot.await_redis) and write
why into their status block. The master, which never talks to Redis itself,
reads that here: it logs the wait once when it begins and once when it ends,
puts it first in STATUS= (the pool is not `ready` meanwhile), and, stopped
before any worker ever served, exits with EXIT_REDIS_UNAVAILABLE rather than
0, so the exit code says whether the pool ever worked.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import logging
from typing import Protocol

from supervisor.errors import EXIT_OK, EXIT_REDIS_UNAVAILABLE

log = logging.getLogger("supervisor.master")


class PoolView(Protocol):
    def waiting(self) -> str: ...

    def workers_up(self) -> int: ...


class Startup:
    """Follows the pool from the master's loop (`observe` once per step)."""

    def __init__(self) -> None:
        self.waiting = ""  # why booting workers wait for Redis now ('' if they do not)
        self.waited = False  # workers ever waited for Redis
        self.served = False  # a worker ever booted (Redis served it)

    def observe(self, pool: PoolView) -> None:
        if pool.workers_up() and not self.served:
            self.served = True  # children forked from now on boot through an outage
        waiting = pool.waiting()
        if waiting and not self.waiting:
            log.warning("workers wait for Redis: %s; retrying (the pool is not serving "
                        "until Redis answers)", waiting)
            self.waited = True
        elif self.waiting and not waiting:
            log.warning("Redis answers again: workers booting")
        self.waiting = waiting

    def status(self) -> str:
        """What STATUS= says first ('' when nothing is held up)."""
        return f"waiting for Redis: {self.waiting}; " if self.waiting else ""

    def exit_code(self, stop_code: int) -> int:
        """The master's exit code for a stop that asked for `stop_code`."""
        if stop_code == EXIT_OK and self.waited and not self.served:
            log.error("stopped before any worker served: Redis never answered (exit code %d)",
                      EXIT_REDIS_UNAVAILABLE)
            return EXIT_REDIS_UNAVAILABLE
        return stop_code
