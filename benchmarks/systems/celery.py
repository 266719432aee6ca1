"""Celery prefork, -c 2, with and without acks_late."""

from __future__ import annotations

from benchmarks.systems.base import Launch, System


def _worker(launch: Launch) -> list[list[str]]:
    # mingle/gossip/heartbeat only talk to other nodes: off, as is usual for one node.
    return [[launch.tool("celery"), "-A", "benchmarks.apps.celery_app", "worker",
             "-P", "prefork", "-c", str(launch.workers), "-Q", "default",
             "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
             "--without-heartbeat"]]


REQUIREMENTS = ("celery[redis]", "kombu")

SYSTEMS = [
    System("celery", "celery", "celery_app", "celery worker -P prefork -c 2 (early ack)",
           _worker, requirements=REQUIREMENTS),
    System("celery-acks-late", "celery", "celery_app",
           "celery -c 2, acks_late + task_reject_on_worker_lost", _worker,
           variant="acks_late", requirements=REQUIREMENTS, primary=False),
]
