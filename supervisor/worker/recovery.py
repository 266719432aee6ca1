"""Recovery by liveness: jobs held by dead consumers go back to work.

A consumer's name says where it lives: `node/pid/start-time`. A worker can
tell for certain whether a consumer of its own node is alive (is there a
process with that pid *and* that start time?), so a dead child's jobs are
recovered within a sweep interval of its death. A consumer of another node
is dead when that node's heartbeat on the queue's shard has expired
(`sv:{q}:node:<node>`), checked again by the claim itself, atomically on
that shard (claim_dead.lua). Never by guessing from idle time: a long job of
a live worker is never taken away. Each queue is swept on its own: a shard
that does not answer stalls the recovery of its queues only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import psutil

from supervisor.api.registry import lookup
from supervisor.broker.connection import TRANSIENT_ERRORS
from supervisor.broker.streams import Claimed, Delivery, Requeue, Settlement
from supervisor.config import Config
from supervisor.core import orphan
from supervisor.core.consumer import ConsumerName
from supervisor.core.job import decode
from supervisor.errors import InvalidMessage, UnknownTask
from supervisor.worker.metrics import NullMetrics
from supervisor.worker.seams import ClaimingBroker

log = logging.getLogger("supervisor.recovery")


def consumer_for_process(node: str, pid: int | None = None) -> ConsumerName:
    """The consumer name of a process of this node (its start time guards against pid reuse)."""
    pid = pid or os.getpid()
    return ConsumerName(node, pid, f"{psutil.Process(pid).create_time():.2f}")


def process_alive(name: ConsumerName) -> bool:
    """True while the very process behind `name` runs (pid reuse is caught by start time)."""
    try:
        process = psutil.Process(name.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return f"{process.create_time():.2f}" == name.started
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def dead_local_consumers(
    consumers: list[dict[str, object]], node: str,
    alive: Callable[[ConsumerName], bool] = process_alive,
) -> list[str]:
    """Names of this node's consumers whose process is gone (from XINFO CONSUMERS)."""
    dead: list[str] = []
    for consumer in consumers:
        raw = str(consumer.get("name", ""))
        name = ConsumerName.parse(raw)
        if name is None or name.node != node:
            continue
        if not alive(name):
            dead.append(raw)
    return dead


def dead_consumers(
    consumers: list[dict[str, object]], node: str, live_nodes: Callable[[set[str]], set[str]],
    alive: Callable[[ConsumerName], bool] = process_alive,
) -> list[str]:
    """Consumers whose holder is gone: local ones by process liveness, others by node heartbeat."""
    dead = dead_local_consumers(consumers, node, alive)
    remote: dict[str, list[str]] = {}
    for consumer in consumers:
        raw = str(consumer.get("name", ""))
        name = ConsumerName.parse(raw)
        if name is not None and name.node != node:
            remote.setdefault(name.node, []).append(raw)
    if remote:
        living = live_nodes(set(remote))
        for other, names in remote.items():
            if other not in living:
                dead.extend(names)
    return dead



class Recovery:
    """Finds the dead consumers of a worker's queues and takes over what they held.

    `sweep()` claims their entries (one atomic step per dead consumer, so of
    several workers noticing the same death only one gets them) and judges
    each job (core/orphan.py); the worker writes the verdicts.
    """

    def __init__(self, config: Config, consumer: str, broker: ClaimingBroker,
                 metrics: NullMetrics, invalid: Callable[[Delivery], Settlement]) -> None:
        self.config = config
        self.consumer = consumer
        self.broker = broker
        self.metrics = metrics
        self.invalid = invalid  # dead-letters a message that cannot run (the runner's)
        # The first error of the last sweep's queues that did not answer (the loop
        # rides it out once the others' verdicts are written), or None.
        self.unreachable: BaseException | None = None

    def sweep(self, queues: list[str]) -> tuple[list[Settlement], list[Requeue]]:
        """Claim what dead consumers of `queues` held: (outcomes to settle, jobs to requeue)."""
        settle: list[Settlement] = []
        requeue: list[Requeue] = []
        held: dict[str, list[Claimed]] = {}
        self.unreachable = None
        for queue in queues:
            try:
                self.sweep_queue(queue, held)
            except TRANSIENT_ERRORS as exc:  # that queue's shard is away: the others go on
                self.unreachable = self.unreachable or exc
        # Judged once every queue's entries are claimed: whether a job was alone in
        # its dead worker is known only from all it held (in the queues we serve);
        # with a queue unread, it may not have been (a suspect then, not a crash).
        for name, claimed_all in held.items():
            culprit = self.overtime(claimed_all) if len(claimed_all) > 1 else None
            alone = len(claimed_all) == 1 and self.unreachable is None
            for claimed in claimed_all:
                self.judge(claimed, name, settle, requeue, alone=alone, culprit=culprit)
        return settle, requeue

    def sweep_queue(self, queue: str, held: dict[str, list[Claimed]]) -> None:
        """Claim the entries of the queue's dead consumers into `held` (by consumer)."""
        node = self.config.node_name

        def live_nodes(names: set[str]) -> set[str]:
            return self.broker.live_nodes(names, queue)

        for name in dead_consumers(self.broker.consumers(queue), node, live_nodes):
            if name == self.consumer:
                continue
            parsed = ConsumerName.parse(name)
            other = parsed.node if parsed is not None and parsed.node != node else None
            for claimed in self.broker.claim_dead(queue, name, self.consumer, node=other):
                self.metrics.reclaimed(queue)
                held.setdefault(name, []).append(claimed)

    @staticmethod
    def overtime(claimed_all: list[Claimed]) -> str | None:
        """The id of a job the dead worker ran past its time limit (the master killed it
        for that job, so the others are innocent), or None."""
        for claimed in claimed_all:
            try:
                job = decode(claimed.delivery.message)
                timeout = lookup(job.task).timeout
            except (InvalidMessage, UnknownTask):
                continue
            if timeout and claimed.idle_ms / 1000 >= timeout:
                return job.id
        return None

    def judge(self, claimed: Claimed, dead: str, settle: list[Settlement],
              requeue: list[Requeue], *, alone: bool = True,
              culprit: str | None = None) -> None:
        """Decide the fate of one job a dead worker held (see core/orphan.py)."""
        delivery = claimed.delivery
        try:
            job = decode(delivery.message)
            task = lookup(job.task)
        except (InvalidMessage, UnknownTask):
            settle.append(self.invalid(delivery))  # dead-letters it as invalid
            return
        verdict = orphan.verdict(job, task, delivery.message, claimed.idle_ms, dead,
                                 self.config.max_crashes, task.result_ttl or self.config.result_ttl,
                                 alone=alone)
        if culprit is not None and verdict.kind == orphan.REQUEUE:
            verdict = orphan.innocent(job, dead, culprit)
        if verdict.kind == orphan.TIMED_OUT:
            log.warning("job %s (%s) ran past its timeout of %ss and its worker %s was killed",
                        job.id, job.task, task.timeout, dead)
        elif verdict.kind == orphan.POISON:
            log.error("job %s (%s) killed its worker %d times: dead-lettered as a poison pill",
                      job.id, job.task, verdict.crashes)
        elif culprit is not None:
            log.warning("job %s (%s) was held by worker %s, killed for job %s's time limit: "
                        "back in the queue", job.id, job.task, dead, culprit)
        elif not alone:
            log.warning("job %s (%s) was held by dead worker %s beside other jobs: back in "
                        "the queue, to run alone", job.id, job.task, dead)
        else:
            log.warning("job %s (%s) was held by dead worker %s: back in the queue", job.id,
                        job.task, dead)
        if verdict.outcome is not None:
            settle.append(Settlement(delivery, job.id, verdict.outcome))
        else:
            requeue.append((delivery, verdict.message, job.id, verdict.record))
