"""Celery prefork, -c 2, with and without acks_late; threads and gevent for the IO table."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.systems.base import IO_SLOTS, Launch, System

# mingle/gossip/heartbeat only talk to other nodes: off, as is usual for one node.
QUIET = ["--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]


def _worker(launch: Launch) -> list[list[str]]:
    return [[launch.tool("celery"), "-A", "benchmarks.apps.celery_app", "worker",
             "-P", "prefork", "-c", str(launch.workers), "-Q", "default", *QUIET]]


def _io_workers(pool: str) -> Callable[[Launch], list[list[str]]]:
    """One worker process per `launch.workers`, each with IO_SLOTS threads or greenlets;
    distinct node names, so the two nodes do not take each other for a duplicate."""

    def commands(launch: Launch) -> list[list[str]]:
        return [[launch.tool("celery"), "-A", "benchmarks.apps.celery_app", "worker",
                 "-P", pool, "-c", str(IO_SLOTS), "-n", f"io{number}@%h", "-Q", "default",
                 *QUIET] for number in range(1, launch.workers + 1)]

    return commands


REQUIREMENTS = ("celery[redis]", "kombu")

SYSTEMS = [
    System("celery", "celery", "celery_app", "celery worker -P prefork -c 2 (early ack)",
           _worker, requirements=REQUIREMENTS),
    System("celery-acks-late", "celery", "celery_app",
           "celery -c 2, acks_late + task_reject_on_worker_lost", _worker,
           variant="acks_late", requirements=REQUIREMENTS, primary=False),
    System("celery-io-threads", "celery", "celery_app",
           f"2 × celery worker -P threads -c {IO_SLOTS} (early ack)", _io_workers("threads"),
           requirements=REQUIREMENTS, table="io"),
    # gevent in a family of its own: if it cannot be installed, Celery's other rows still run.
    System("celery-io-gevent", "celery-gevent", "celery_app",
           f"2 × celery worker -P gevent -c {IO_SLOTS} (early ack)", _io_workers("gevent"),
           requirements=(*REQUIREMENTS, "gevent"), table="io"),
]
