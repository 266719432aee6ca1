"""Drawing one configuration a user may run, from a seed (pure: no processes, no Redis).

Dimensions of an example (each drawn independently, so a run of N examples
meets most combinations):

- queues: 1-4 queue names in use;
- nodes: 1-3 nodes, each reading a non-empty subset of those queues in a
  random order (overlapping sets; every queue has at least one reader),
  1-2 workers per node, a prefetch cap of 1, 4 or 64, --concurrency 1, 4
  or 16 (jobs in flight per child);
- jobs: 30-120 of them, each on a random queue, fast (0-5 ms) or slow
  (100-400 ms), failing its first 0-2 attempts on purpose (retries with a
  durable backoff), with `ignore_result` or not, a sync task or its
  `async def` twin;
- how each job is enqueued: `delay()`, `apply_async()` (sometimes onto a
  queue other than its task's), `enqueue_many` batches mixing queues,
  `apply_async(countdown=...)`, or `apply_async(job_id=...)` with an
  explicit id (sometimes enqueued twice: the second must be ignored);
- when: before any worker exists (wave 0, some examples), once the nodes
  are up (wave 1), and after a SIGKILL of a child in the middle of a slow
  job (wave 2; in about half of the examples).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gen_tasks import MAX_ATTEMPTS, QUEUE_NAMES

HOW = ("delay", "apply", "many", "countdown", "job_id")


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    queues: tuple[str, ...]  # in the order given to --queues
    workers: int
    prefetch: int
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class JobSpec:
    index: int
    queue: str  # where it is enqueued
    task_queue: str  # the queue its task declares (differs after a queue override)
    ms: int
    fail_times: int
    forget: bool  # an ignore_result task
    how: str
    wave: int
    countdown: float = 0.0
    job_id: str | None = None
    twice: bool = False  # an explicit id enqueued a second time
    asynchronous: bool = False  # the `async def` twin of its task

    @property
    def marker(self) -> str:
        return f"job-{self.index}"


@dataclass(frozen=True, slots=True)
class Example:
    seed: int
    queues: tuple[str, ...]
    nodes: tuple[NodeSpec, ...]
    jobs: tuple[JobSpec, ...]
    kill: bool  # SIGKILL a child in the middle of a slow job before wave 2

    def readers(self, queue: str) -> set[str]:
        return {node.name for node in self.nodes if queue in node.queues}

    def describe(self) -> str:
        nodes = "; ".join(f"{n.name} reads {','.join(n.queues)} with {n.workers} worker(s), "
                          f"prefetch {n.prefetch}, concurrency {n.concurrency}"
                          for n in self.nodes)
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.how] = counts.get(job.how, 0) + 1
        waves = sorted({job.wave for job in self.jobs})
        flags = [f"{sum(j.fail_times > 0 for j in self.jobs)} retried",
                 f"{sum(j.forget for j in self.jobs)} ignore_result",
                 f"{sum(j.ms >= 100 for j in self.jobs)} slow",
                 f"{sum(j.asynchronous for j in self.jobs)} async def",
                 f"{sum(j.queue != j.task_queue for j in self.jobs)} queue overrides"]
        return (f"seed {self.seed}: {len(self.jobs)} jobs on {','.join(self.queues)} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}; "
                f"{', '.join(flags)}; waves {waves}; kill {self.kill}); {nodes}")


def _nodes(rng: random.Random, queues: tuple[str, ...]) -> tuple[NodeSpec, ...]:
    count = rng.randint(1, 3)
    sets = [rng.sample(queues, rng.randint(1, len(queues))) for _ in range(count)]
    for queue in queues:  # every queue in use has a reader
        if not any(queue in chosen for chosen in sets):
            rng.choice(sets).append(queue)
    return tuple(NodeSpec(f"gen-{i + 1}", tuple(rng.sample(chosen, len(chosen))),
                          rng.randint(1, 2), rng.choice((1, 4, 64)), rng.choice((1, 4, 16)))
                 for i, chosen in enumerate(sets))


def _job(rng: random.Random, seed: int, index: int, queues: tuple[str, ...], kill: bool,
         early: bool) -> JobSpec:
    how = rng.choice(HOW)
    task_queue = rng.choice(queues)
    queue = rng.choice(queues) if how == "apply" and rng.random() < 0.5 else task_queue
    waves = [1] + [0] * early + [2] * kill
    return JobSpec(
        index=index, queue=queue, task_queue=task_queue,
        ms=rng.randint(100, 400) if rng.random() < 0.12 else rng.randint(0, 5),
        fail_times=rng.choice((1, 2)) if rng.random() < 0.2 else 0,
        forget=rng.random() < 0.15, how=how, wave=rng.choice(waves),
        countdown=round(rng.uniform(0.1, 0.8), 3) if how == "countdown" else 0.0,
        job_id=f"gen-{seed}-{index}" if how == "job_id" else None,
        twice=how == "job_id" and rng.random() < 0.5, asynchronous=rng.random() < 0.3)


def draw(seed: int) -> Example:
    rng = random.Random(seed)
    queues = tuple(rng.sample(QUEUE_NAMES, rng.randint(1, len(QUEUE_NAMES))))
    nodes = _nodes(rng, queues)
    kill = rng.random() < 0.5
    early = rng.random() < 0.3
    jobs = tuple(_job(rng, seed, index, queues, kill, early)
                 for index in range(rng.randint(30, 120)))
    if kill and not any(job.ms >= 100 and job.wave == 1 for job in jobs):
        # The kill needs a slow job running in wave 1: make the first such job slow.
        first = next(job for job in jobs if job.wave == 1)
        jobs = tuple(JobSpec(**{**_fields(job), "ms": 300}) if job is first else job
                     for job in jobs)
    assert all(job.fail_times < MAX_ATTEMPTS for job in jobs)
    return Example(seed, queues, nodes, jobs, kill)


def _fields(job: JobSpec) -> dict[str, object]:
    return {name: getattr(job, name) for name in JobSpec.__slots__}  # type: ignore[attr-defined]
