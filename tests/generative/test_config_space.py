"""The configuration space, drawn at random: every job of every configuration runs once.

A worker reading two queues once lost half its jobs and no test noticed,
because every test used one queue. This test draws configurations a user
may run and checks the accounting of each (see gen_space for the
dimensions it covers and gen_run for the rules):

- 1-4 queues; 1-3 nodes reading overlapping subsets of them, 1-2 workers
  each, prefetch 1, 4 or 64;
- jobs enqueued by `delay()`, `apply_async()` (with a queue override),
  `enqueue_many` batches mixing queues, countdowns, explicit job ids
  (enqueued twice), before any worker exists and while nodes run;
- fast and slow jobs, planned failures retried with a durable backoff,
  `ignore_result` tasks;
- a SIGKILL of a child in the middle of a slow job.

`make test` runs CONFIG_SPACE_EXAMPLES examples (default 10, under a minute)
from a random base seed printed at the start; more with
`CONFIG_SPACE_EXAMPLES=100`. A failure names the example's seed; replay it
alone with `CONFIG_SPACE_SEED=<seed> CONFIG_SPACE_EXAMPLES=1`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from gen_run import run_example
from gen_space import draw

EXAMPLES = int(os.environ.get("CONFIG_SPACE_EXAMPLES", "10"))
BASE_SEED = int(os.environ.get("CONFIG_SPACE_SEED") or random.randrange(1, 1_000_000))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("index", range(EXAMPLES))
def test_every_job_of_a_drawn_configuration_runs_once(index: int, redis_url: str,
                                                      tmp_path: Path) -> None:
    example = draw(BASE_SEED + index)
    print(f"\nconfig space: {example.describe()}")
    report = run_example(example, redis_url, tmp_path)
    print(f"config space: seed {example.seed}: {report.executions} executions in "
          f"{report.seconds:.1f}s, killed {sorted(report.killed) or 'none'}")
    replay = (f"replay with CONFIG_SPACE_SEED={example.seed} CONFIG_SPACE_EXAMPLES=1; "
              f"{example.describe()}")
    assert report.problems == [], f"{len(report.problems)} problem(s) ({replay}): " + \
        "; ".join(report.problems[:15])
