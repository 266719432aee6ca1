"""`make run`: the supervisor with workers and a batch of example jobs.

Starts the master (`supervisor run`) with four workers on the Redis named by
SUPERVISOR_REDIS_URL, or on the embedded server in ./.supervisor when none is
given; enqueues a batch of example jobs, shows a progress bar while they
complete, prints a summary, then stops the master gracefully (SIGTERM), and
the embedded server too if the demo started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from supervisor import AsyncResult, TaskFailed, configure, enqueue_many
from supervisor.broker import embedded
from tasks import examples

BATCH = 2000
WORKERS = 4


def start_master(url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "supervisor", "run", "--workers", str(WORKERS),
               "--tasks", "tasks.examples", "--queues", "default,reports", "--redis-url", url,
               "--log-level", "WARNING"]
    return subprocess.Popen(command)


def settle(result: AsyncResult[Any]) -> str:
    try:
        result.get(timeout=0)
        return "succeeded"
    except TaskFailed:
        return "failed"
    except TimeoutError:
        return ""


def batch() -> tuple[list[Any], str]:
    """The demo's jobs, and what they are in words (the header counts them all)."""
    jobs = ([examples.add.s(i, i) for i in range(BATCH)]
            + [examples.process_data.s([1.5, 2.5, float(i)]) for i in range(50)]
            + [examples.flaky.s(3) for _ in range(10)]
            + [examples.build_report.s(f"2026-11-{day:02d}") for day in range(1, 21)]
            + [examples.build_report.s("")])  # rejected on purpose: shows a dead letter
    words = (f"{len(jobs):,} jobs: {BATCH:,} add, 50 process_data (retried now and then), "
             "10 flaky (fail twice, then succeed), 21 build_report (one rejected on purpose)")
    return jobs, words


def main() -> int:
    console = Console()
    url = os.environ.get("SUPERVISOR_REDIS_URL") or "embedded://.supervisor"
    data_dir = embedded.parse_dir(url) if url.startswith("embedded://") else None
    ours = data_dir is not None and not embedded.server_running(data_dir)
    configure(redis_url=url)
    signatures, words = batch()
    console.print(f"[bold]supervisor demo[/] on {url}: {WORKERS} workers, {words}",
                  soft_wrap=True)
    master = start_master(url)
    started = time.monotonic()
    results = enqueue_many(signatures)
    outcomes: Counter[str] = Counter()
    pending = list(results)
    columns = (TextColumn("jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("jobs", total=len(results))
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline and master.poll() is None:
                still = []
                for result in pending:
                    state = settle(result)
                    if state:
                        outcomes[state] += 1
                        progress.advance(bar)
                    else:
                        still.append(result)
                pending = still
                time.sleep(0.05)
        elapsed = time.monotonic() - started
        table = Table(title="summary")
        for column in ("jobs", "succeeded", "failed (dead-lettered)", "unfinished", "seconds"):
            table.add_column(column, justify="right")
        table.add_row(str(len(results)), str(outcomes["succeeded"]), str(outcomes["failed"]),
                      str(len(pending)), f"{elapsed:.1f}")
        console.print(table)
        console.print(f"sum of add results: {sum(r.get(timeout=1) for r in results[:10])} "
                      "(first ten)")
        if outcomes["failed"] == 1:
            console.print("the 1 failed job is build_report(''), rejected on purpose "
                          "(Reject: a report needs a day) to show a dead letter", soft_wrap=True)
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
        code = master.wait(timeout=60)
        console.print(f"master stopped gracefully (exit {code})")
        if ours and data_dir is not None:
            embedded.stop_server(data_dir, wait=10)
            console.print(f"stopped the embedded server the demo started in {data_dir}",
                          soft_wrap=True, highlight=False)
    console.print(f"look closer: .venv/bin/supervisor dead list --redis-url {url}  "
                  "(also: queues, status, job JOB_ID)", soft_wrap=True, highlight=False)
    if data_dir is not None:
        console.print("(those commands start the embedded server again; `make stop` stops it)",
                      soft_wrap=True, highlight=False)
    return 0 if not pending and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
