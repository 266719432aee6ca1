"""The CPU price of hooks on the worker's path of one job, measured in-process.

    .venv/bin/python benchmarks/hooks_cost.py [--jobs N] [--runs N]

Runs the worker's own `Runner.process` (decode the message, look the task
up, bind the arguments, run a no-op task, build the outcome and the record)
on the same messages without middleware and with one no-op middleware
around every attempt (`benchmarks/apps/ours_hooks.py`), and prints µs per
job for each (median of the runs). No Redis, no processes: what the
end-to-end `ours` / `ours-hook` rows of `run.py` cannot resolve on a noisy
machine (their spread is wider than the difference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps.ours_hooks import NoOp  # noqa: E402
from supervisor import configure, task  # noqa: E402
from supervisor.api import middleware, session  # noqa: E402
from supervisor.broker.streams import Delivery  # noqa: E402
from supervisor.core.job import Job  # noqa: E402
from supervisor.fork.status import ChildStatus  # noqa: E402
from supervisor.worker.runner import Runner  # noqa: E402


@task(name="hooks_cost.noop")
def noop() -> None:
    return None


def per_job(jobs: int, hooked: bool) -> float:
    configure(middleware=[NoOp()] if hooked else [])
    runner = Runner(session.settings(), "bench-consumer", ChildStatus())
    assert bool(runner.hooks.attempts) is hooked
    deliveries = [Delivery("default", f"{n}-0", Job(id=f"{n:032x}", task="hooks_cost.noop",
                                                     queue="default").encode())
                  for n in range(jobs)]
    started = time.process_time()
    for delivery in deliveries:
        runner.process(delivery)
    return (time.process_time() - started) / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(options.runs):  # interleaved: drifts of the machine hit both alike
        for hooked in (False, True):
            results[hooked].append(per_job(options.jobs, hooked))
    middleware.use([])
    bare, hooked = (statistics.median(results[k]) for k in (False, True))
    print("| worker path of one job (Runner.process, no-op task) | CPU µs/job |")
    print("|---|---|")
    print(f"| no middleware | {bare:.2f} |")
    print(f"| one no-op middleware (before_attempt + after_attempt) | {hooked:.2f} "
          f"(+{hooked - bare:.2f}) |")


if __name__ == "__main__":
    main()
