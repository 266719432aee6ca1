"""The CPU price of hooks on the worker's path of one job, A/B against trees without hooks.

    .venv/bin/python benchmarks/hooks_cost.py [--jobs N] [--runs N] [--against LABEL=DIR ...]

Runs the worker's own `Runner.process` (decode the message, look the task
up, bind the arguments, run a no-op task, build the outcome and the record)
on N messages, each measurement in a fresh process, and prints µs of CPU
per job (median of the runs, with min and max) for:

- this tree without middleware, and with one no-op middleware around every
  attempt (`benchmarks/apps/ours_hooks.py`);
- each `--against` tree without middleware: a source tree of another commit
  (e.g. `git archive <commit-before-hooks> | tar -x -C /tmp/before`), whose
  own `supervisor` is imported in its process.

The measurements are interleaved (each run measures every row once, in a
rotating order), so the machine's drifts and its other load hit all rows
alike: cross-run numbers on a shared machine cannot resolve a few per cent.
No Redis: what the end-to-end `ours` / `ours-hook` rows of `run.py` cannot
resolve either (their spread is wider than the difference).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # this tree's root


def measure(src: Path, jobs: int, hooked: bool) -> float:
    """CPU µs per job of `src`'s Runner.process; run in a process of its own."""
    sys.path.insert(0, str(src))
    import supervisor
    from supervisor import configure, task
    from supervisor.api import session
    from supervisor.broker.streams import Delivery
    from supervisor.core.job import Job
    from supervisor.fork.status import ChildStatus
    from supervisor.worker.runner import Runner

    # Not an installed copy (an editable install's finder could win over sys.path).
    assert Path(supervisor.__file__).resolve().is_relative_to(src.resolve()), supervisor.__file__
    if hooked:  # only this tree: the one with middleware
        from benchmarks.apps.ours_hooks import NoOp
        configure(middleware=[NoOp()])

    @task(name="hooks_cost.noop")
    def noop() -> None:
        return None

    runner = Runner(session.settings(), "bench-consumer", ChildStatus())
    if hooked:
        assert runner.hooks.attempts, "the no-op middleware is not installed"
    deliveries = [Delivery("default", f"{n}-0", Job(id=f"{n:032x}", task="hooks_cost.noop",
                                                     queue="default").encode())
                  for n in range(jobs)]
    for delivery in deliveries[:min(jobs, 1000)]:  # warm up: first calls, caches
        runner.process(delivery)
    started = time.process_time()
    for delivery in deliveries:
        runner.process(delivery)
    return (time.process_time() - started) / jobs * 1e6


def measured(src: Path, jobs: int, hooked: bool) -> float:
    """One measurement in a fresh interpreter (no state shared between rows)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", str(src),
               "--jobs", str(jobs)] + (["--hooked"] if hooked else [])
    done = subprocess.run(command, cwd=src, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", action="append", default=[], metavar="LABEL=DIR",
                        help="a source tree to measure without middleware too")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one measurement
    parser.add_argument("--hooked", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(f"{measure(options.measure, options.jobs, options.hooked):.4f}")
        return

    rows: list[tuple[str, Path, bool]] = [
        ("this tree, no middleware", HERE, False),
        ("this tree, one no-op middleware (before_attempt + after_attempt)", HERE, True),
    ]
    for item in options.against:
        label, equals, directory = item.partition("=")
        if not equals or not (Path(directory) / "supervisor").is_dir():
            parser.error(f"--against {item!r}: not LABEL=DIR of a source tree")
        rows.append((label, Path(directory).resolve(), False))
    results: list[list[float]] = [[] for _ in rows]
    for run in range(options.runs):
        for turn in range(len(rows)):  # rotating order: no row always first or last
            index = (run + turn) % len(rows)
            _, src, hooked = rows[index]
            results[index].append(measured(src, options.jobs, hooked))
    bare = statistics.median(results[0])
    print(f"| worker path of one job (Runner.process, no-op task; {options.jobs} jobs, "
          f"median of {options.runs} interleaved runs) | CPU µs/job (min–max) | vs this tree |")
    print("|---|---|---|")
    for (label, _, _), found in zip(rows, results, strict=True):
        middle = statistics.median(found)
        print(f"| {label} | {middle:.2f} ({min(found):.2f}–{max(found):.2f}) | "
              f"{middle - bare:+.2f} ({(middle - bare) / bare:+.1%}) |")


if __name__ == "__main__":
    main()
