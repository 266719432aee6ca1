"""What flow control costs: throughput of one node on the same INCR job without limits, under
a generous rate limit, a generous concurrency limit, and unique per argument.

    .venv/bin/python benchmarks/limits_cost.py [--jobs N] [--runs N] [--workers N]

Each run: a private Redis (persistence off), `supervisor run --workers N` on the tasks of
benchmarks/apps/ours_limits.py, N jobs enqueued first (enqueue_many), then jobs/s from the
first to the last job done (the counter the tasks INCR), and worker CPU µs per job (the
node's processes' CPU time). Median (min-max) of the runs, the rows interleaved so load
from other processes spreads over all of them.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.redis_server import private_redis  # noqa: E402

ROWS = {
    "no limit": ("bench.lim.none", False),
    "rate_limit='1000000/s'": ("bench.lim.rate", False),
    "concurrency_limit=1000": ("bench.lim.concurrency", False),
    "unique=True (distinct args)": ("bench.lim.unique", True),
}
COUNTER = "bench:count"


def one_run(url: str, task: str, with_arg: bool, jobs: int, workers: int) -> tuple[float, float]:
    client = redis.Redis.from_url(url)
    client.flushall()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")},
           "SUPERVISOR_REDIS_URL": url, "BENCH_REDIS_URL": url,
           "PYTHONPATH": str(ROOT)}
    produce = ("from supervisor import enqueue_many, configure\n"
               "from supervisor.api.registry import lookup\n"
               "import benchmarks.apps.ours_limits\n"
               f"t = lookup({task!r})\n"
               f"enqueue_many(t.s({'i' if with_arg else ''}) for i in range({jobs}))\n")
    subprocess.run([sys.executable, "-c", produce], env=env, cwd=ROOT, check=True)
    node = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "--workers",
                             str(workers), "--tasks", "benchmarks.apps.ours_limits",
                             "--node-name", "bench"], env=env, cwd=ROOT,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = int(client.get(COUNTER) or 0)
            if first is None and done:
                first = (time.monotonic(), done, _cpu(node.pid))
            if done >= jobs:
                break
            time.sleep(0.005)
        end = time.monotonic()
        cpu = _cpu(node.pid)
        assert first is not None, "no job ran"
        counted = jobs - first[1]
        return counted / (end - first[0]), (cpu - first[2]) / counted * 1e6
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


def _cpu(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {row: [] for row in ROWS}
    with private_redis() as (server, _):
        url = f"redis://127.0.0.1:{server.port}/0"
        for _ in range(options.runs):
            for row, (task, with_arg) in ROWS.items():
                results[row].append(one_run(url, task, with_arg, options.jobs, options.workers))
    print("| row | jobs/s first→last | worker CPU µs/job |")
    print("|---|---|---|")
    for row, runs in results.items():
        rates = [rate for rate, _ in runs]
        cpus = [cpu for _, cpu in runs]
        print(f"| {row} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"
              f" | {statistics.median(cpus):.1f} ({min(cpus):.1f}–{max(cpus):.1f}) |")


if __name__ == "__main__":
    main()
