"""`run_master`: the process around the arbiter (config, logging, pidfile, metrics, title).

master.py is the arbiter's policy; this is the one-time set-up and tear-down
of the master process that `supervisor run` calls.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import setproctitle

from supervisor.children import ChildTarget
from supervisor.config import Config
from supervisor.errors import EXIT_USAGE, ConfigError
from supervisor.master import Master
from supervisor.metrics_http import make_multiproc_dir
from supervisor.node_lock import NodeLock
from supervisor.nodestate import share
from supervisor.observer import Observer
from supervisor.runtime import PidFile, ensure_logging

log = logging.getLogger("supervisor.master")


def run_master(load: Callable[[], Config], *, target: ChildTarget | None = None) -> int:
    """Entry point of `supervisor run`: load the config, run the master, return the exit code.

    `load` re-reads the config file and environment (CLI values stay fixed);
    it is called again on every SIGHUP.
    """
    try:
        config = load()
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ensure_logging(config)
    master = Master(config, load=load, target=target)
    try:
        lock = NodeLock.acquire(config.node_name, config.redis_url)
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    master.pool.close_in_child.append(lock.close)
    try:
        # Before the first fork: every child maps the buffer and sees the metrics dir.
        observer = Observer.start(config.metrics_bind, config.metrics_port, master.numbers,
                                  make_multiproc_dir)
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        lock.close()
        return EXIT_USAGE
    master.observer = observer
    share(observer.buffer)
    if observer.server is not None:
        master.pool.close_in_child.append(observer.server.close)
        log.info("serving metrics on http://%s:%d/metrics", *observer.server.address)
    pidfile = PidFile(config.pidfile)
    pidfile.write()
    master.reloads.started(master.generation)
    try:
        setproctitle.setproctitle(f"supervisor: master [{config.node_name}]")
        return master.run()
    finally:
        master.reloads.remove()
        pidfile.remove()
        lock.close()
        share(None)
        observer.close()
