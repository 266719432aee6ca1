"""A worker's checks between importing the task code and taking its first job.

Both catch, at start, what would otherwise make every worker fail in a loop:

- `schedule_problems`: a `[[schedule]]` of the config file that names a task
  the imported modules do not define (only now are the task modules known);
- `await_redis`: Redis must serve this worker before it counts as booted.
  A permanent refusal (credentials, permission, database) raises
  `RedisRefused`: the child exits with CHILD_EXIT_REDIS_REFUSED and its master
  stops instead of restarting it. An unreachable server is waited for, with
  the reason in the child's status block (the master shows it in STATUS= and
  logs it once); the master is not `ready` meanwhile. Once the pool has served,
  an outage no longer holds booting children back (ChildContext.pool_served).
"""

from __future__ import annotations

import logging
import random
import signal
import time
import types
from collections.abc import Callable

from supervisor.config import Config
from supervisor.errors import RedisRefused
from supervisor.fork.status import ChildStatus

log = logging.getLogger("supervisor.worker")

RETRY_MIN = 0.1  # seconds before the first retry of an unreachable Redis ...
RETRY_MAX = 2.0  # ... doubling up to this

def schedule_problems(config: Config) -> list[str]:
    """Config-file schedules whose task is not registered here (call after importing
    `config.tasks`; without task modules nothing can be told)."""
    if not config.config_file or not config.tasks:
        return []
    from supervisor.api.registry import is_registered
    from supervisor.config import read_schedule_file

    schedules, _ = read_schedule_file(config.config_file)  # its syntax was checked at load
    return [f"schedule {item.name} ({item.source}) names task {item.task!r}, which the task "
            f"modules {','.join(config.tasks) or '(none)'} do not define"
            for item in schedules if not is_registered(item.task)]


def banner(config: Config, consumer: str) -> list[str]:
    """A worker's first log lines: its Redis (no password), queues, concurrency, tasks."""
    from supervisor.api.registry import registered_names
    from supervisor.redis_url import describe

    names = registered_names()
    at_once = ("one job at a time" if config.concurrency == 1 else
               f"up to {config.concurrency} jobs at once (--concurrency)")
    return [f"worker {consumer} consuming {','.join(config.queues)} from "
            f"{describe(config.redis_url)}, {at_once} (fetching up to "
            f"{config.prefetch})",
            f"worker {consumer} runs {len(names)} task(s): {', '.join(names) or '(none)'}"]


def await_redis(config: Config, status: ChildStatus | None = None, *,
                pool_served: bool = False,
                probe: Callable[[str, tuple[str, ...]], object] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> bool:
    """Return True once Redis serves this worker, False if a stop signal came first.

    `status` is a child's status block (its master reports the waiting); without
    one (`supervisor worker`) the waiting is logged here, once per reason.
    """
    if probe is None:
        from supervisor.broker import keys
        from supervisor.broker.refusals import probe as probe_redis

        keys.use_namespace(config.namespace)  # the probe makes the queues' groups

        probe = probe_redis
    stop = _StopFlag()
    delay, said = RETRY_MIN, ""
    try:
        while not stop.raised:
            refusal = probe(config.redis_url, config.queues)
            if stop.raised:  # asked to stop during the probe: taken nothing, leave
                return False
            if refusal is None:
                if said and status is None:
                    log.warning("Redis serves again: starting")
                return True
            if getattr(refusal, "permanent", False):
                raise RedisRefused(str(refusal))
            if pool_served and status is not None:
                return True  # the pool served before: ride this outage in the loop
            if str(refusal) != said:
                said = str(refusal)
                if status is not None:
                    status.mark_waiting(said)
                else:
                    log.warning("%s; not starting yet, retrying", said)
            pause = delay * random.uniform(0.8, 1.2)
            while pause > 0 and not stop.raised:  # a stop is taken within 0.1 s
                sleep(min(0.1, pause))
                pause -= 0.1
            delay = min(RETRY_MAX, delay * 2)
        return False
    finally:
        stop.restore()


class _StopFlag:
    """TERM, INT or QUIT while waiting: leave quietly (nothing to hand back yet)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)

    def __init__(self) -> None:
        self.raised = False
        self.previous = {signum: signal.signal(signum, self._on_signal)
                         for signum in self.SIGNALS}

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        self.raised = True

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
