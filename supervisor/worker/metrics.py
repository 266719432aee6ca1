"""Prometheus metrics of a worker, written to prometheus_client's multiprocess files.

The master serves them (master/metrics_http.py): each child writes its own
files in the master's private directory (ChildContext.metrics_dir), so a
child's counters outlive the child (a recycled child's counts stay in the
total). Also here: the settled-job counts behind `status` jobs/s.

Cost per job matters (the hot path has a budget of ~100 µs CPU per job): a
multiprocess `labels(...).inc()` costs ~5 µs and a histogram observation as
much again, because each writes to an mmap under a lock. So jobs are counted
in plain dicts (~1 µs per job) and flushed to the metric objects every
FLUSH_EVERY seconds from the worker's housekeeping, and once more on the way
out (a child SIGKILLed loses at most its last FLUSH_EVERY seconds of counts).

`NullMetrics` is what a worker uses when metrics are off: every call is a no-op.
"""

from __future__ import annotations

import bisect
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from supervisor.broker.keys import WORKFLOW_STATES
from supervisor.broker.reconnect import OutageLog

log = logging.getLogger("supervisor.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_EVERY = 0.5  # seconds between flushes of the locally counted jobs

# Job durations: from sub-millisecond jobs to five-minute reports.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0, float("inf"))
_BOUNDS = DURATION_BUCKETS

# Outcomes of one attempt (label `outcome` of supervisor_jobs_total).
SUCCEEDED = "succeeded"
RETRY = "retry"
FAILED = "failed"
INVALID = "invalid"
CANCELLED = "cancelled"  # cancelled before it started, stopped by a cancel, or expired
DEPTH_STATES = ("waiting", "running", "scheduled", "dead")


class NullMetrics:
    """Metrics off: every call does nothing."""

    enabled = False

    def job(self, task: str, queue: str, outcome: str, seconds: float | None) -> None:
        """One attempt ended (seconds: how long it ran; None when it never ran)."""

    def flush(self) -> None:
        pass

    def reconnected(self) -> None:
        pass

    def promoted(self, count: int) -> None:
        pass

    def reclaimed(self, queue: str, count: int = 1) -> None:
        pass

    def limited(self, task: str, queue: str, kind: str) -> None:
        """A job was sent to wait for its limit (kind 'rate' or 'concurrency')."""

    def queue_depths(self, stats: Iterable[Any]) -> None:
        pass


class PrometheusMetrics(NullMetrics):
    """A worker's metrics in multiprocess mode (create only in the child, after the fork)."""

    enabled = True

    def __init__(self) -> None:
        # Imported here, in the child, after use_directory(): prometheus_client
        # chooses its multiprocess value class from PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        registry = CollectorRegistry()  # not the global one: these live in the files
        self.registry = registry
        self.jobs_total = Counter(
            "supervisor_jobs", "Job attempts by task, queue and outcome "
            "(succeeded, retry, failed, invalid).", ["task", "queue", "outcome"],
            registry=registry)
        self.duration = Histogram(
            "supervisor_job_duration_seconds", "Time a job attempt ran, by task.", ["task"],
            buckets=DURATION_BUCKETS, registry=registry)
        self.reconnects = Counter(
            "supervisor_redis_reconnects", "Redis outages a worker rode out "
            "(connection lost, then back).", registry=registry)
        self.promoted_total = Counter(
            "supervisor_delayed_promoted", "Delayed and retrying jobs moved to their queue "
            "when due.", registry=registry)
        self.reclaimed_total = Counter(
            "supervisor_jobs_reclaimed", "Jobs taken over from dead consumers (crashed "
            "workers, dead nodes).", ["queue"], registry=registry)
        self.limited_total = Counter(
            "supervisor_jobs_limited", "Jobs sent to wait in Redis for their limit (kind: "
            "rate, a later turn; concurrency, a free slot), by task and queue.",
            ["task", "queue", "kind"], registry=registry)
        self.depth = Gauge(
            "supervisor_queue_depth", "Jobs per queue and state, as last seen by a worker of "
            "this node.", ["queue", "state"], multiprocess_mode="livemostrecent",
            registry=registry)
        self.paused = Gauge(
            "supervisor_queue_paused", "1 while the queue is paused (`supervisor queues "
            "pause`), as last seen by a worker of this node.", ["queue"],
            multiprocess_mode="livemostrecent", registry=registry)
        self.chords = Gauge(
            "supervisor_workflow_chords_open", "Chords of workflows open in the queue (members "
            "still to end), as last seen by a worker of this node.", ["queue"],
            multiprocess_mode="livemostrecent", registry=registry)
        self.workflows = Gauge(
            "supervisor_workflows", "Workflows whose first job is of the queue, still on "
            "record (the result TTL), by state: running, succeeded, failed; as last seen by "
            "a worker of this node.", ["queue", "state"], multiprocess_mode="livemostrecent",
            registry=registry)
        self._jobs: dict[tuple[str, str, str], int] = {}
        self._durations: dict[str, list[float]] = {}  # per task: per-bucket counts + [sum]
        self._counting = threading.Lock()

    # --- the hot path: plain dict arithmetic -----------------------------------

    def job(self, task: str, queue: str, outcome: str, seconds: float | None) -> None:
        # Under a lock: with users' hooks, the outcomes of a many-slot child are built
        # on the threads that ran the jobs (worker/runner.py attempt()); uncontended
        # otherwise, a fraction of a microsecond.
        with self._counting:
            key = (task, queue, outcome)
            self._jobs[key] = self._jobs.get(key, 0) + 1
            if seconds is None:
                return
            counts = self._durations.get(task)
            if counts is None:
                counts = self._durations[task] = [0.0] * (len(_BOUNDS) + 1)
            counts[bisect.bisect_left(_BOUNDS, seconds)] += 1
            counts[-1] += seconds

    # --- flushed from housekeeping ----------------------------------------------

    def flush(self) -> None:
        """Write what was counted since the last flush into the multiprocess files."""
        with self._counting:
            jobs, self._jobs = self._jobs, {}
            durations, self._durations = self._durations, {}
        for key, count in jobs.items():
            self.jobs_total.labels(*key).inc(count)
        for task, counts in durations.items():
            child: Any = self.duration.labels(task)
            # Histogram.observe() adds one to the first bucket whose bound is >= the
            # value, and the value to _sum; adding the counted numbers to the same
            # values gives identical files at a fraction of the cost.
            for index, observed in enumerate(counts[:-1]):
                if observed:
                    child._buckets[index].inc(observed)
            child._sum.inc(counts[-1])

    def reconnected(self) -> None:
        self.reconnects.inc()

    def promoted(self, count: int) -> None:
        if count:
            self.promoted_total.inc(count)

    def reclaimed(self, queue: str, count: int = 1) -> None:
        self.reclaimed_total.labels(queue).inc(count)

    def limited(self, task: str, queue: str, kind: str) -> None:
        # Not on every job's path (only jobs sent to wait), so counted directly.
        self.limited_total.labels(task, queue, kind).inc()

    def queue_depths(self, stats: Iterable[Any]) -> None:
        for item in stats:
            for state in DEPTH_STATES:
                self.depth.labels(item.queue, state).set(getattr(item, state))
            self.paused.labels(item.queue).set(1 if getattr(item, "paused", False) else 0)
            self.chords.labels(item.queue).set(getattr(item, "chords", 0))
            for state in WORKFLOW_STATES:
                self.workflows.labels(item.queue, state).set(
                    getattr(item, f"workflows_{state}", 0))


def use_directory(path: str) -> None:
    """Make this process (a child) write prometheus_client's multiprocess files in `path`.

    Call before the task modules are imported: task code that uses
    prometheus_client is exported too. prometheus_client picks its value
    class from PROMETHEUS_MULTIPROC_DIR when it is imported; if the master
    had imported it already (it does, to serve scrapes and to mark reaped
    children dead), the child inherited the choice made without the
    variable, so it is made again here, before any metric exists.
    """
    os.environ[MULTIPROC_ENV] = path
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def for_worker(metrics_dir: str | None) -> NullMetrics:
    """Prometheus metrics if our master serves them (it gave us a directory), else no-ops.

    Deciding by the master's directory rather than by the config keeps a HUP
    that changes --metrics-port from turning counting on or off in new
    children only (the master reads the port at start only).
    """
    if metrics_dir is None:
        return NullMetrics()
    try:
        metrics = PrometheusMetrics()
    except Exception as exc:  # noqa: BLE001 - metrics must never stop a worker
        log.warning("metrics disabled in this worker: %s", exc)
        return NullMetrics()
    return metrics


class CountedOutageLog(OutageLog):
    """An OutageLog that also reports each outage that ended (a reconnect)."""

    def __init__(self, what: str, on_recovered: Callable[[], None],
                 explain: Callable[[BaseException], str | None] = lambda exc: None) -> None:
        super().__init__(what, explain=explain)
        self.on_recovered = on_recovered

    def recovered(self) -> None:
        if self.since is not None:
            self.on_recovered()
        super().recovered()


RATE_FLUSH_EVERY = 1.0  # seconds between flushes of a worker's settled-job counts


class RateCounter:
    """Jobs settled per queue, counted locally, written once a second (`status` jobs/s)."""

    def __init__(self, write: Callable[[dict[str, int], int], None]) -> None:
        self.write = write  # (counts per queue, epoch second): broker.add_done
        self.counts: dict[str, int] = {}
        self.next_flush = 0.0

    def add(self, queue: str, count: int = 1) -> None:
        self.counts[queue] = self.counts.get(queue, 0) + count

    def tick(self, now: float, wall: float) -> None:
        if now >= self.next_flush and self.counts:
            self.next_flush = now + RATE_FLUSH_EVERY
            self.flush(wall)

    def flush(self, wall: float) -> None:
        if not self.counts:
            return
        counts, self.counts = self.counts, {}
        try:
            self.write(counts, int(wall))
        except Exception:
            # Put them back: the next flush carries them (counts, not exact seconds).
            for queue, count in counts.items():
                self.counts[queue] = self.counts.get(queue, 0) + count
            raise
