"""Periodic (cron) jobs: fired by every worker of every node, enqueued once per tick.

Each worker calls `tick(now)` about twice a second. Between fire times that
costs nothing (the next fire time of each schedule is kept in memory); when
a schedule is due, the worker reads its last fire from Redis, asks
core/schedule.plan() which ticks to fire (catch-up policy), and fires each
through enqueue.lua in its 'tick' mode (Broker.fire_tick), which makes the
tick marker, the last-fire record and the enqueue one atomic step: whichever
worker comes first enqueues, every other one is told it fired already.
Exactly once per tick therefore comes from Redis, not from electing a
"beat" node.

Schedules are re-read (code and the config file's `[[schedule]]` tables)
whenever a worker starts, so a HUP, which starts a new generation of
workers, applies an edited config file.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

from supervisor.api.middleware import enqueue_headers, hooks_for
from supervisor.api.periodic import Entry, all_schedules, resolve
from supervisor.broker.enqueue import EnqueueRequest, Tick
from supervisor.broker.schedules import PUBLISH_DEFS_EVERY, last_fires, publish_definitions
from supervisor.broker.streams import Broker
from supervisor.config import Config
from supervisor.core import record
from supervisor.core.job import Job
from supervisor.core.schedule import (
    Schedule,
    job_id_for,
    last_fire,
    local_and_utc,
    marker_ttl,
    next_fire,
    parse_last,
    plan,
)
from supervisor.errors import ConfigError, SupervisorError, UnknownTask

log = logging.getLogger("supervisor.scheduler")


class Scheduler(Protocol):
    def tick(self, now: float) -> int:
        """Enqueue every schedule tick due at `now` (epoch seconds); return how many."""
        ...


class RedisScheduler:
    """Fires due ticks of its schedules (Broker.fire_tick)."""

    def __init__(self, config: Config, broker: Broker, entries: list[Entry]) -> None:
        self.config = config
        self.broker = broker
        self.client: Any = broker.client
        self.entries = entries
        self.node = config.node_name
        self.hooks = hooks_for(config)  # before_enqueue runs for a fired tick too
        self.next_check: dict[str, float] = {}
        self._queues_registered = False
        self._published_at = -math.inf

    def publish(self, now: float) -> None:
        """Publish the schedules this worker runs (broker/schedules.py), every
        PUBLISH_DEFS_EVERY seconds: `supervisor schedules` lists them from any host."""
        if now - self._published_at < PUBLISH_DEFS_EVERY:
            return
        self._published_at = now
        try:
            publish_definitions(self.client, {entry.schedule.name: definition(entry)
                                              for entry in self.entries}, self.node, now)
        except Exception as exc:  # noqa: BLE001 - listing them is not worth a failed tick
            log.warning("could not publish the schedule definitions: %s", exc)

    def tick(self, now: float) -> int:
        self.publish(now)
        due = [entry for entry in self.entries
               if now >= self.next_check.get(entry.schedule.name, 0.0)]
        if not due:
            return 0
        if not self._queues_registered:
            self.broker.remember_queues(sorted({entry.queue for entry in self.entries}))
            self._queues_registered = True
        fires = last_fires(self.client, [(entry.queue, entry.schedule.name) for entry in due])
        fired = 0
        for entry, raw in zip(due, fires, strict=True):
            fired += self.fire_due(entry, parse_last(raw), now)
            upcoming = next_fire(entry.schedule, now)
            self.next_check[entry.schedule.name] = math.inf if upcoming is None else upcoming
        return fired

    def fire_due(self, entry: Entry, last: dict[str, Any] | None, now: float) -> int:
        schedule = entry.schedule
        last_tick = int(last["tick"]) if last else None
        todo = plan(schedule, last_tick, now)
        fired = 0
        for tick in todo.fire:
            if self.fire(entry, tick, now):
                fired += 1
        if fired and todo.skipped_from is not None:
            first, _ = local_and_utc(todo.skipped_from, schedule.tz)
            log.info("schedule %s: skipped missed ticks from %s on (catch_up=%s)",
                     schedule.name, first, schedule.catch_up)
        return fired

    def fire(self, entry: Entry, tick: int, now: float) -> bool:
        """Enqueue one tick unless some worker already did; True if this call did."""
        schedule = entry.schedule
        job = Job(id=job_id_for(schedule, tick), task=schedule.task, queue=entry.queue,
                  args=schedule.args, kwargs=schedule.kwargs, created=now, host=self.node,
                  priority=entry.priority)
        if self.hooks.before_enqueue:
            job.headers = enqueue_headers(self.hooks, job.id, job.task, job.queue, job.args,
                                          job.kwargs, None)
        request = EnqueueRequest(entry.queue, job.id, job.encode(self.config.max_payload_bytes),
                                 record.of_new_job(job, 0), ttl=entry.ttl)
        result = self.broker.fire_tick(
            Tick(schedule.name, tick, marker_ttl(schedule, tick),
                 last_fire(tick, job.id, now, self.node)),
            request, int(time.time() * 1000))
        if result == 1:
            log.info("schedule %s: enqueued job %s for tick %s", schedule.name, job.id,
                     local_and_utc(tick, schedule.tz)[0])
            return True
        if result == 2:
            log.warning("schedule %s: tick %s taken but job %s already existed; not enqueued",
                        schedule.name, tick, job.id)
        return False


def definition(entry: Entry) -> dict[str, Any]:
    """What is published of a schedule: its definition, with the queue as resolved here."""
    schedule = entry.schedule
    return {"task": schedule.task, "cron": schedule.cron, "every": schedule.every,
            "tz": schedule.tz, "args": list(schedule.args), "kwargs": schedule.kwargs,
            "queue": entry.queue, "catch_up": schedule.catch_up, "source": schedule.source}


def _usable(schedule: Schedule, config: Config) -> Entry | None:
    """The resolved entry, or None (logged) if this worker cannot run it."""
    try:
        entry = resolve(schedule, config)
        Job(id=job_id_for(schedule, 0), task=schedule.task, queue=entry.queue,
            args=schedule.args, kwargs=schedule.kwargs).encode(config.max_payload_bytes)
    except UnknownTask:
        log.error("schedule %s (%s) names task %r, which is not registered in this worker "
                  "(check --tasks); the schedule is not run", schedule.name, schedule.source,
                  schedule.task)
        return None
    except SupervisorError as exc:
        log.error("schedule %s (%s): %s; the schedule is not run", schedule.name,
                  schedule.source, exc)
        return None
    return entry


def load_schedules(config: Config) -> list[Schedule]:
    """Code schedules and the config file's, logging (and leaving out) invalid entries."""
    try:
        schedules, problems = all_schedules(config.config_file)
    except ConfigError as exc:
        log.error("%s; running the schedules declared in code only", exc)
        return list(all_schedules(None)[0])
    for problem in problems:
        log.error("%s; this schedule is not run", problem)
    return schedules


def make_scheduler(config: Config, client: Any, broker: Broker | None = None,
                   ) -> Scheduler | None:
    """The scheduler for this worker (on `broker`, else one made for `client`),
    or None when there is nothing to schedule."""
    entries = [entry for schedule in load_schedules(config)
               if (entry := _usable(schedule, config)) is not None]
    if not entries:
        return None
    return RedisScheduler(config, broker or Broker.for_config(client, config),
                          entries)
