"""Running one drawn example against real nodes, and accounting for every job.

`run_example(example, redis_url, workdir)` starts the example's nodes
(`supervisor run` masters, see tests/node_process.py), enqueues its jobs in
waves, SIGKILLs a child in the middle of a slow job when the example says
so, waits (bounded) until every job has succeeded and every queue is empty,
stops the nodes with SIGTERM, and returns the `Report`: problems found, one
line each. The accounting rules:

- every enqueued job (an explicit id enqueued twice counts once) has, for
  each attempt 1..fail_times+1, exactly one execution that finished, and
  nothing beyond; the last one succeeded;
- an attempt that ran more than once, or an execution that never finished,
  is explained only by a SIGKILL of the process that ran the earlier one;
- every execution ran on a node that reads the job's queue;
- the job record says `succeeded` with the job's own result (an
  `ignore_result` job leaves no record);
- the queues end empty (nothing waiting, pending or scheduled) and every
  node exits 0 on SIGTERM.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gen_tasks
import redis
from gen_space import Example, JobSpec
from node_process import Node

import supervisor.api.producer as producer_module
from supervisor import enqueue_many
from supervisor.api.result import AsyncResult
from supervisor.broker.inspect import queue_stats
from supervisor.errors import JobNotFound

HERE = Path(__file__).resolve().parent
DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Execution:
    attempt: int
    node: str
    pid: int
    start: float
    queue: str
    outcome: str | None  # "ok", "fail", or None: never finished


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)
    executions: int = 0
    seconds: float = 0.0

    def add(self, problem: str) -> None:
        self.problems.append(problem)


def executions(client: Any, job_id: str) -> list[Execution]:
    starts: dict[tuple[str, str, str], list[str]] = {}
    ends: dict[tuple[str, str, str], str] = {}
    for line in client.lrange(gen_tasks.execution_key(job_id), 0, -1):
        kind, attempt, node, pid, start, last = line.split()
        if kind == "S":
            starts[(attempt, pid, start)] = [attempt, node, pid, start, last]
        else:
            ends[(attempt, pid, start)] = last
    found = [Execution(int(a), n, int(p), float(s), q, ends.get((a, p, s)))
             for (a, n, p, s, q) in starts.values()]
    return sorted(found, key=lambda e: e.start)


def _nodes(example: Example, redis_url: str, workdir: Path) -> list[Node]:
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    return [Node(spec.name, workers=spec.workers, redis_url=redis_url,
                 log_dir=workdir / "logs", heartbeat_timeout=3.0, result_ttl=600,
                 tasks="gen_tasks", cwd=HERE, queues=",".join(spec.queues), max_crashes=3,
                 env={"GEN_NODE": spec.name, "SUPERVISOR_PREFETCH": str(spec.prefetch),
                      "SUPERVISOR_CONCURRENCY": str(spec.concurrency)},
                 options=("--graceful-timeout", "10"))
            for spec in example.nodes]


def _task(job: JobSpec) -> Any:
    if job.asynchronous:
        return (gen_tasks.AFORGET if job.forget else gen_tasks.AWORK)[job.task_queue]
    return (gen_tasks.FORGET if job.forget else gen_tasks.WORK)[job.task_queue]


def _batches(jobs: list[JobSpec], rng: random.Random) -> Iterator[list[JobSpec]]:
    while jobs:
        size = rng.randint(2, 20)
        yield jobs[:size]
        jobs = jobs[size:]


def enqueue_wave(example: Example, wave: int, ids: dict[int, str]) -> None:
    """Enqueue the jobs of one wave, each the way its spec says; note each job's id."""
    jobs = [job for job in example.jobs if job.wave == wave]
    for job in jobs:
        task, args = _task(job), (job.ms, job.fail_times, job.marker)
        if job.how == "delay":
            ids[job.index] = task.delay(*args).id
        elif job.how == "apply":
            ids[job.index] = task.apply_async(args=args, queue=job.queue).id
        elif job.how == "countdown":
            ids[job.index] = task.apply_async(args=args, countdown=job.countdown).id
        elif job.how == "job_id":
            ids[job.index] = task.apply_async(args=args, job_id=job.job_id).id
            if job.twice:  # the same id again: ignored while its record lives
                assert task.apply_async(args=args, job_id=job.job_id).id == job.job_id
    many = [job for job in jobs if job.how == "many"]
    for batch in _batches(many, random.Random(example.seed * 31 + wave)):
        results = enqueue_many(_task(job).s(job.ms, job.fail_times, job.marker)
                               for job in batch)
        for job, result in zip(batch, results, strict=True):
            ids[job.index] = result.id


def kill_a_busy_child(client: Any, example: Example, ids: dict[int, str],
                      report: Report) -> None:
    """SIGKILL the child running some slow job (wait, bounded, for one to start)."""
    slow = [ids[job.index] for job in example.jobs if job.ms >= 100 and job.index in ids]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for job_id in slow:
            running = [e for e in executions(client, job_id) if e.outcome is None]
            if running:
                os.kill(running[-1].pid, signal.SIGKILL)
                report.killed.add(running[-1].pid)
                return
        time.sleep(0.01)
    report.add("no slow job was seen running: the kill did not happen")


def drained(client: Any, example: Example, ids: dict[int, str]) -> bool:
    for queue in example.queues:
        stats = queue_stats(client, queue)
        if stats.waiting or stats.running or stats.scheduled:
            return False
    return all(any(e.outcome == "ok" for e in executions(client, job_id))
               for job_id in ids.values())


def account(client: Any, example: Example, ids: dict[int, str], report: Report) -> None:
    for job in example.jobs:
        job_id = ids.get(job.index)
        if job_id is None:
            report.add(f"{job.marker} was never enqueued")
            continue
        runs = executions(client, job_id)
        report.executions += len(runs)
        label = f"{job.marker} ({job_id}, queue {job.queue}, {job.how})"
        _check_attempts(label, job, runs, report)
        for run in runs:
            if run.node not in example.readers(job.queue) or run.queue != job.queue:
                report.add(f"{label} ran on {run.node} from queue {run.queue}")
        _check_record(client, label, job, job_id, report)


def _check_attempts(label: str, job: JobSpec, runs: list[Execution], report: Report) -> None:
    wanted = list(range(1, job.fail_times + 2))
    seen = sorted({run.attempt for run in runs})
    if seen != wanted:
        report.add(f"{label}: attempts {seen}, expected {wanted}")
    for attempt in seen:
        of_attempt = [run for run in runs if run.attempt == attempt]
        finished = [run for run in of_attempt if run.outcome is not None]
        if not finished:
            report.add(f"{label}: attempt {attempt} never finished")
        for earlier in of_attempt[:-1]:
            if earlier.pid not in report.killed:
                report.add(f"{label}: attempt {attempt} ran {len(of_attempt)} times, "
                           f"unexplained (pid {earlier.pid} was not killed)")
        if of_attempt and of_attempt[-1].outcome is None and of_attempt[-1].pid not in \
                report.killed:
            report.add(f"{label}: attempt {attempt} cut off in pid {of_attempt[-1].pid}")
    if runs and runs[-1].outcome != "ok":
        report.add(f"{label}: the last execution did not succeed ({runs[-1].outcome})")


def _check_record(client: Any, label: str, job: JobSpec, job_id: str, report: Report) -> None:
    handle: AsyncResult[Any] = AsyncResult(job_id, queue=job.queue, client=client)
    try:
        record = handle.info()
    except JobNotFound:
        if not job.forget:
            report.add(f"{label}: no job record")
        return
    if job.forget:
        report.add(f"{label}: ignore_result job left a record ({record.get('state')})")
    elif record.get("state") != "succeeded" or record.get("result") != job.marker:
        report.add(f"{label}: record {record.get('state')} with result {record.get('result')!r}")


def run_example(example: Example, redis_url: str, workdir: Path) -> Report:
    report = Report()
    started = time.monotonic()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    producer_module.configure(redis_url=redis_url, result_ttl=600)
    nodes = _nodes(example, redis_url, workdir)
    ids: dict[int, str] = {}
    try:
        enqueue_wave(example, 0, ids)  # before any worker exists
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        enqueue_wave(example, 1, ids)
        if example.kill:
            kill_a_busy_child(client, example, ids, report)
        enqueue_wave(example, 2, ids)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not drained(client, example, ids):
            if time.monotonic() > deadline:
                report.add(f"not drained after {DRAIN_TIMEOUT:.0f}s")
                break
            time.sleep(0.05)
        for node in nodes:  # stop them all at once, then wait for each
            node.send(signal.SIGTERM)
        for node in nodes:
            code = node.wait(timeout=20)
            if code != 0:
                report.add(f"{node.name} exited {code} on SIGTERM (log {node.log_path})")
        account(client, example, ids, report)
    finally:
        for node in nodes:
            node.reap_group()
        producer_module._overrides.clear()
        producer_module._producer = None
    report.seconds = time.monotonic() - started
    return report
