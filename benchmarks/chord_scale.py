"""A chord of 10,000 members: members per second, and the delay from the last member to
the callback.

    .venv/bin/python benchmarks/chord_scale.py [--members 10000] [--workers 2] [--runs 3]

A private Redis (persistence off), a real `supervisor run --workers N` node, and a
chord enqueued before the node starts (so its members are taken as fast as the workers
go). From the records: the members' span (first start to last finish), hence members
per second, and the delay from the last member's finish to the callback's start (its
settle enqueued the callback; the delay is the callback's pickup). A benchmark, not a
test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.apps import workflow_app as app  # noqa: E402
from benchmarks.redis_server import private_redis  # noqa: E402
from supervisor import chord, configure  # noqa: E402
from supervisor.broker import keys  # noqa: E402


def one_run(url: str, members: int, workers: int) -> dict[str, float]:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushall()
    configure(redis_url=url)
    started = time.perf_counter()
    result = chord((app.member.s(i) for i in range(members)), app.callback.s()).delay()
    enqueue_s = time.perf_counter() - started
    node = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "run", "--workers", str(workers), "--tasks",
         "benchmarks.apps.workflow_app", "--redis-url", url], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert result.get(timeout=600) == members
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(30)
    ids = [child.id for child in result.parent.children]
    first, last = float("inf"), 0.0
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for job_id in ids[start:start + 1000]:
            pipe.get(keys.job("default", job_id))
        for raw in pipe.execute():
            attempt = json.loads(raw)["attempts"][-1]
            first, last = min(first, attempt["started"]), max(last, attempt["finished"])
    called = json.loads(client.get(keys.job("default", result.id)))["attempts"][-1]
    return {"enqueue_s": enqueue_s, "members_per_s": members / (last - first),
            "callback_delay_ms": (called["started"] - last) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with private_redis() as (server, version):
        runs = [one_run(server.url, args.members, args.workers) for _ in range(args.runs)]
    print(f"redis {version}: chord of {args.members:,} members, {args.workers} workers, "
          f"{args.runs} runs (median, min-max)")
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for name in ("enqueue_s", "members_per_s", "callback_delay_ms"):
        values = [run[name] for run in runs]
        print(f"| {name} | {statistics.median(values):.3g} | {min(values):.3g} | "
              f"{max(values):.3g} |")


if __name__ == "__main__":
    main()
