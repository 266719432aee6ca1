"""`run_master`: the process around the arbiter (config, logging, pidfile, metrics, title).

arbiter.py is the master's policy; this is the one-time set-up and tear-down
of the master process that `supervisor run` calls. What the children run
(`target`) is handed in by the caller (cli/run.py): the master does not
import the worker.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable

import setproctitle

from supervisor.config import Config
from supervisor.errors import EXIT_USAGE, ConfigError
from supervisor.fork.context import ChildTarget
from supervisor.master.arbiter import Master
from supervisor.master.metrics_http import make_multiproc_dir
from supervisor.master.node_lock import NodeLock
from supervisor.master.observer import Observer
from supervisor.master.runtime import PidFile, ensure_logging

log = logging.getLogger("supervisor.master")


def run_master(load: Callable[[], Config], *, target: ChildTarget) -> int:
    """Load the config, run the master, return the exit code.

    `load` re-reads the config file and environment (CLI values stay fixed);
    it is called again on every SIGHUP.
    """
    try:
        config = load()
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ensure_logging(config)
    try:
        lock = NodeLock.acquire(config.node_name, config.redis_url)
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Before the first fork: every child gets the buffer and the metrics dir.
        observer = Observer.start(config.metrics_bind, config.metrics_port, make_multiproc_dir)
    except ConfigError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        lock.close()
        return EXIT_USAGE
    master = Master(config, load=load, target=target, observer=observer)
    master.pool.close_in_child.append(lock.close)  # the lock is the master's alone
    if observer.server is not None:
        log.info("serving metrics on http://%s:%d/metrics", *observer.server.address)
    pidfile = PidFile(config.pidfile)
    pidfile.write()
    master.reloads.started(master.generation)
    try:
        setproctitle.setproctitle(f"supervisor: master [{config.node_name}]")
        return master.run()
    finally:
        # The loop is over and its children are gone: a stop signal arriving now
        # (an operator's second Ctrl-C or TERM) must not turn a clean exit into
        # death by that signal.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        master.reloads.remove()
        pidfile.remove()
        lock.close()
        observer.close()
