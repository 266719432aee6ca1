"""The master's hook point: `on_reload`, run in the master when a reload begins.

Only middleware named in the configuration (`--middleware`, environment,
config file) can hook the master: code registered with `configure()` lives
in task modules, which the master never imports. The named modules are
imported here at each reload, not at start (the master imports no user code
before its first fork), and imported afresh on later reloads, so the new
generation forked after it sees them as they are on disk now. A middleware
that fails to import, or an on_reload that raises, is logged and the reload
goes on: a hook never stops the pool. Keep such modules light (no task
imports): the master never talks to Redis.
"""

from __future__ import annotations

import importlib
import logging
import sys

from supervisor.config import Config
from supervisor.core.middleware import Hooks, ReloadInfo, load

log = logging.getLogger("supervisor.master")


def run_reload_hooks(config: Config, generation: int, previous_generation: int) -> None:
    """Load `config.middleware` afresh and call each on_reload (in order, errors logged)."""
    if not config.middleware:
        return
    found = []
    for name in config.middleware:
        module = sys.modules.get(name.partition(":")[0])
        try:
            if module is not None:
                importlib.reload(module)  # the code as it is on disk now
            found.append(load(name))
        except Exception as exc:  # noqa: BLE001 - a broken hook never stops a reload
            log.error("reload: middleware %s not loaded, its on_reload skipped: %s", name, exc)
    Hooks(found).run("on_reload", ReloadInfo(generation, previous_generation,
                                             config.workers))
