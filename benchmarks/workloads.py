"""The workloads: each runs once and returns flat numeric metrics (plus notes).

throughput  N jobs enqueued before the workers start; done when the counter says so
io          throughput of jobs that wait 10 ms then INCR, 16 in flight per process
latency     idle workers, jobs sent one at a time at a fixed rate
fairness    4 workers, 8 jobs of 1 s: wall time (batching must not starve anyone)
kill_child  throughput of `mark` jobs with one child SIGKILLed halfway: lost / duplicates
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from benchmarks.apps.common import IO_WAIT
from benchmarks.context import Context, RunFailed
from benchmarks.procs import WorkerGroup, running
from benchmarks.redis_server import Stats, stats, workload_calls
from benchmarks.systems.base import IO_SLOTS

POLL = 0.02  # seconds between counter reads
SAMPLE = 0.1  # seconds between psutil samples of the worker tree
FULL_SAMPLE = 0.5  # seconds between samples that also read USS/PSS (smaps: costlier)
BOOT_TIMEOUT = 60.0
MB = 1024 * 1024
NOOP_MARKER = 100  # in the no-op workload, every 100th job is an INCR marker

Metrics = dict[str, Any]


@dataclass
class Mark:
    """Where a run stood at one moment: time, jobs done, worker CPU, Redis counters."""

    at: float
    done: int
    cpu: float
    redis: Stats


@dataclass
class Watch:
    start: Mark
    first: Mark | None = None
    end: Mark | None = None
    curve: list[tuple[float, int]] = field(default_factory=list)
    gets: int = 0  # the harness's own GETs, removed from the command counts
    timed_out: bool = False


def watch(ctx: Context, group: WorkerGroup, target: int, timeout: float,
          halfway: Any = None) -> Watch:
    """Start the workers and follow the counter until it reaches `target` (or the deadline)."""
    result = Watch(Mark(time.monotonic(), 0, 0.0, stats(ctx.client)))
    group.start()
    result.start.at = time.monotonic()
    deadline = result.start.at + timeout
    next_sample = next_full = 0.0
    while True:
        now = time.monotonic()
        done = ctx.count()
        result.gets += 1
        result.curve.append((now, done))
        if now >= next_sample:  # keeps the memory peaks and the tree's pids current
            # USS/PSS peaks once jobs run: before its first fork a master has
            # every page to itself, which says nothing about a worker.
            full = now >= next_full and result.first is not None
            group.sample(full=full)
            next_sample = now + SAMPLE
            next_full = now + FULL_SAMPLE if full else next_full
        if done and result.first is None:
            result.first = Mark(now, done, group.sample().cpu, stats(ctx.client))
        if halfway is not None and done >= target // 2:
            halfway()
            halfway = None
        if done >= target or now > deadline:
            result.timed_out = done < target
            result.end = Mark(now, done, group.sample().cpu, stats(ctx.client))
            return result
        if len(group.dead_roots()) == len(group.roots):
            raise RunFailed(f"workers exited ({group.dead_roots()}); see {group.log}")
        time.sleep(POLL)


def steady_rate(curve: list[tuple[float, int]], scale: int = 1) -> float | None:
    """Jobs/s between 10% and 90% of the final count (of a finished or a timed-out run)."""
    final = curve[-1][1] if curve else 0
    low = next(((t, n) for t, n in curve if n >= final * 0.1 and n > 0), None)
    high = next(((t, n) for t, n in curve if n >= final * 0.9), None)
    if low is None or high is None or high[0] <= low[0]:
        return None
    return (high[1] - low[1]) * scale / (high[0] - low[0])


def per_job(watch_: Watch, first: Mark, jobs: int) -> Metrics:
    """Worker CPU, Redis CPU and Redis commands per job over [first, end]."""
    end = watch_.end
    assert end is not None
    gets = sum(1 for t, _ in watch_.curve if first.at <= t <= end.at)
    redis_cpu, calls = end.redis.minus(first.redis)
    calls = workload_calls(calls, gets)
    jobs = max(jobs, 1)
    top = sorted(calls.items(), key=lambda item: -item[1])[:10]
    return {
        "worker_cpu_us_per_job": (end.cpu - first.cpu) / jobs * 1e6,
        "redis_cpu_us_per_job": redis_cpu / jobs * 1e6,
        "redis_cmds_per_job": sum(calls.values()) / jobs,
        "redis_cmds_breakdown": {name: round(n / jobs, 3) for name, n in top},
    }


def throughput(ctx: Context, jobs: int, *, kind: str = "incr", workers: int = 2,
               timeout: float = 60.0) -> Metrics:
    """`incr` (or `io`): bulk-enqueued, each job counted. `noop`: one call per job; every
    NOOP_MARKER-th job is an `incr` marker, so progress is visible for every system."""
    ctx.reset()
    began = time.monotonic()
    if kind == "noop":
        sent = ctx.driver("enqueue", "--job", f"noop:{jobs}", "--marker-every",
                          str(NOOP_MARKER), timeout=jobs / 500)
        scale = NOOP_MARKER
    else:
        sent = ctx.driver("enqueue", "--job", f"{kind}:{jobs}", "--bulk", timeout=jobs / 500)
        scale = 1
    enqueue_wall = time.monotonic() - began
    group = ctx.workers(workers, tag=f"{kind}-{workers}")
    try:
        seen = watch(ctx, group, jobs // scale, timeout)
    finally:
        group.stop()
    assert seen.end is not None
    if seen.first is None:
        raise RunFailed(f"no job completed within {timeout:.0f}s of the workers' start; "
                        f"see {group.log}")
    elapsed = seen.end.at - seen.start.at
    done = seen.end.done * scale
    first = seen.first
    between = seen.end.at - first.at
    metrics: Metrics = {
        "jobs": jobs,
        "completed": min(done, jobs),
        "timed_out": seen.timed_out,
        "jobs_per_s": done / elapsed if elapsed > 0 else 0.0,
        "first_to_last_jobs_per_s": ((seen.end.done - first.done) * scale / between
                                     if between > 0 else None),
        "steady_jobs_per_s": steady_rate(seen.curve, scale),
        "peak_rss_mb": max(group.peak_rss.values(), default=0) / MB,
        "peak_uss_mb": max(group.peak_uss.values(), default=0) / MB,
        "peak_pss_mb": max(group.peak_pss.values(), default=0) / MB,
        "peak_memory_each": group.peaks(),
        "enqueue_jobs_per_s": jobs / sent["seconds"],
        "enqueue_mode": "single" if kind == "noop" else ("bulk" if sent["bulk_api"] else "loop"),
        "harness_enqueue_s": enqueue_wall, "harness_stop_s": group.stop_seconds,
    }
    metrics.update(per_job(seen, first, (seen.end.done - first.done) * scale))
    return metrics


def io_ceiling(workers: int = 2) -> float:
    """The IO-bound workload's ceiling: workers × IO_SLOTS jobs in flight, each taking at
    least IO_WAIT."""
    return workers * IO_SLOTS / IO_WAIT


def io(ctx: Context, jobs: int, *, workers: int = 2, timeout: float = 20.0) -> Metrics:
    """The throughput workload on `io` jobs (wait IO_WAIT, then INCR); its share of the
    ceiling is that of the rate from the first job to the last (boot left out)."""
    metrics = throughput(ctx, jobs, kind="io", workers=workers, timeout=timeout)
    ceiling = io_ceiling(workers)
    rate = metrics["first_to_last_jobs_per_s"]
    metrics.update({"ceiling_jobs_per_s": ceiling,
                    "ceiling_share": rate / ceiling if rate is not None else None})
    return metrics


IDLE = 1.0  # seconds the workers stay idle between the warm-up and the measured jobs


def _warm_up(ctx: Context, group: WorkerGroup, jobs: int = 4, idle: float = IDLE) -> None:
    """Wait until the workers have run a few jobs, then let them go idle for `idle` s."""
    ctx.driver("send", "--kind", "latency", "--n", str(jobs), "--rate", "50", timeout=10)
    ctx.wait_for(lambda: ctx.count() >= jobs, BOOT_TIMEOUT, group, "the warm-up jobs")
    ctx.client.delete("bench:count", "bench:lat")
    time.sleep(idle)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def latency(ctx: Context, jobs: int, rate: float = 200.0, workers: int = 2) -> Metrics:
    ctx.reset()
    began = time.monotonic()
    with running(ctx.workers(workers, tag="latency")) as group:
        _warm_up(ctx, group, idle=0.0)
        warm = time.monotonic() - began
        # The producer imports and connects during the idle second, and sends
        # its first job when the second is over.
        start_at = time.time() + IDLE
        sender = ctx.driver_start("send", "--kind", "latency", "--n", str(jobs),
                                  "--rate", str(rate), "--start-at", repr(start_at))
        try:
            time.sleep(max(0.0, start_at - 0.1 - time.time()))
            idle = group.sample(full=True)
        finally:
            ctx.driver_result(sender, timeout=IDLE + jobs / rate)
        try:
            ctx.wait_for(lambda: ctx.count() >= jobs, 10.0, group, "the latency jobs")
        except RunFailed:
            if not ctx.client.llen("bench:lat"):
                raise
    delays = [float(value) * 1000 for value in ctx.client.lrange("bench:lat", 0, -1)]
    if not delays:
        raise RunFailed("no latency recorded")
    return {
        "jobs": jobs, "received": len(delays),
        "p50_ms": statistics.median(delays), "p90_ms": percentile(delays, 0.9),
        "p99_ms": percentile(delays, 0.99), "max_ms": max(delays),
        "idle_rss_mb": max(idle.rss.values(), default=0) / MB,
        "idle_uss_mb": max((m.uss for m in idle.memory.values()), default=0) / MB,
        "idle_pss_mb": max((m.pss for m in idle.memory.values()), default=0) / MB,
        "idle_pss_total_mb": sum(m.pss for m in idle.memory.values()) / MB,
        "idle_rss_mb_each": sorted(round(v / MB, 1) for v in idle.rss.values()),
        "idle_memory_each": [idle.memory[pid].as_mb() for pid in sorted(idle.memory)],
        "harness_warm_up_s": warm, "harness_stop_s": group.stop_seconds,
    }


def fairness(ctx: Context, workers: int = 4, jobs: int = 8, seconds: float = 1.0) -> Metrics:
    ctx.reset()
    with running(ctx.workers(workers, tag="fairness")) as group:
        _warm_up(ctx, group, jobs=workers * 2)
        sent = ctx.driver("enqueue", "--job", f"sleep:{jobs}:{seconds}", "--bulk", timeout=10)
        ctx.wait_for(lambda: ctx.count() >= jobs, jobs * seconds + 30, group, "the sleep jobs")
        wall = time.time() - sent["started_at"]
    ran = [line.split() for line in ctx.client.lrange("bench:ran", 0, -1)]
    per_worker = Counter(pid for pid, _, _ in ran)
    first_start = min((float(start) for _, start, _ in ran), default=0.0)
    return {"workers": workers, "jobs": jobs, "job_seconds": seconds, "wall_s": wall,
            "ideal_s": seconds * -(-jobs // workers),
            "workers_used": len(per_worker),
            "most_jobs_on_one_worker": max(per_worker.values(), default=0),
            "first_start_s": first_start - sent["started_at"] if ran else 0.0,
            "timeline": sorted((pid, round(float(a) - sent["started_at"], 3),
                                round(float(b) - sent["started_at"], 3)) for pid, a, b in ran)}


def _kill_one_child(group: WorkerGroup) -> dict[str, Any]:
    """SIGKILL one worker child of the first root (never the root itself)."""
    try:
        children = psutil.Process(group.roots[0].pid).children()
    except psutil.Error:
        children = []
    workers = [c for c in children if "worker" in " ".join(c.cmdline())] or children
    if not workers:
        return {"killed_pid": 0}
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    return {"killed_pid": victim.pid, "killed_at": time.monotonic()}


QUIET = 2.0  # seconds without progress before the kill-child run counts as settled


class Quiet:
    """Tells how long a reading has stayed the same (polled)."""

    def __init__(self, read: Any) -> None:
        self.read = read
        self.value = read()
        self.since = time.monotonic()

    def for_at_least(self, seconds: float) -> bool:
        value = self.read()
        if value != self.value:
            self.value, self.since = value, time.monotonic()
        return time.monotonic() - self.since >= seconds


def kill_child(ctx: Context, jobs: int, workers: int = 2, timeout: float = 120.0) -> Metrics:
    """Every job HINCRBYs its own field: lost = fields never seen, duplicates = extra runs."""
    ctx.reset()
    ctx.driver("enqueue", "--job", f"mark:{jobs}", "--bulk", timeout=jobs / 500)
    killed: dict[str, Any] = {}
    group = ctx.workers(workers, tag="kill-child")
    try:
        watch(ctx, group, jobs, timeout, halfway=lambda: killed.update(_kill_one_child(group)))
        # Settled: every index seen, every stream entry acknowledged (ours deletes
        # acked entries), and the counter quiet for QUIET seconds, so a late
        # re-run of a recovered job is still counted as a duplicate.
        from supervisor.broker import keys

        stream = keys.stream("default")
        quiet = Quiet(ctx.count)
        ctx.wait_for(lambda: ctx.client.hlen("bench:seen") >= jobs
                     and ctx.client.xlen(stream) == 0 and quiet.for_at_least(QUIET),
                     timeout, group, "every job settled")
        settled = time.monotonic()
    finally:
        group.stop()
    runs = [int(v) for v in ctx.client.hvals("bench:seen")]
    return {
        "jobs": jobs, "killed_pid": killed.get("killed_pid", 0),
        "lost": jobs - len(runs), "duplicates": sum(runs) - len(runs),
        "jobs_run_twice_or_more": sum(1 for n in runs if n > 1),
        "settled_s_after_kill": settled - QUIET - killed.get("killed_at", settled),
    }
