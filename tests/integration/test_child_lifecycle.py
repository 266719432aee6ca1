"""A child's own part in supervision: job-count recycling, USR1, stray signals."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import sample_tasks
from helpers import wait_until

from supervisor import enqueue_many

pytestmark = pytest.mark.usefixtures("producer")
Start = Callable[..., subprocess.Popen[bytes]]


def test_max_jobs_per_child_is_exact_even_for_fast_jobs(start_master: Start) -> None:
    master = start_master("--workers", "2", "--max-jobs-per-child", "5")
    results = enqueue_many(sample_tasks.quick.s() for _ in range(60))
    for result in results:
        assert result.get(timeout=30) == "ok"
    per_worker = Counter(result.info()["attempts"][-1]["worker"] for result in results)
    assert max(per_worker.values()) <= 5  # jitter is 0..10 % of 5, i.e. none
    assert len(per_worker) >= 12  # 60 jobs / 5 per child
    assert master.poll() is None


def test_usr1_reopens_log_files_and_stray_signals_do_no_harm(
        start_master: Start, tmp_path: Path) -> None:
    log_file = tmp_path / "supervisor.log"
    master = start_master("--workers", "1", "--log-file", str(log_file))
    [child] = wait_until(lambda: psutil.Process(master.pid).children(), what="child")
    assert sample_tasks.echo.delay(1).get(timeout=20) == [1, None]
    # A HUP/TTIN/TTOU sent to the whole process group must not kill the child.
    for stray in (signal.SIGTTIN, signal.SIGTTOU):
        os.kill(child.pid, stray)
    rotated = tmp_path / "supervisor.log.1"
    log_file.rename(rotated)
    master.send_signal(signal.SIGUSR1)
    wait_until(log_file.exists, what="master reopened its log file")
    with pytest.raises(Exception, match="not today"):
        sample_tasks.rejects.delay().get(timeout=20)
    wait_until(lambda: "not today" in log_file.read_text(), what="child logs to the new file")
    assert child.is_running() and child.status() != psutil.STATUS_STOPPED


@pytest.mark.parametrize("recycling", [("--max-jobs-per-child", "7"),
                                       ("--max-memory-per-child", "1")])
def test_recycling_runs_every_job_exactly_once(start_master: Start,
                                               recycling: tuple[str, str]) -> None:
    """Graceful paths are exact: children recycled for job count or memory lose nothing."""
    import redis as redis_client

    from supervisor.api.producer import current_producer

    master = start_master("--workers", "2", *recycling)
    # Jobs longer than the master's tick, so memory recycling happens mid-run too.
    results = enqueue_many(sample_tasks.slow.s(0.05) for _ in range(60))
    for result in results:
        assert result.get(timeout=60) == "done"
    client: redis_client.Redis = current_producer().client
    runs = client.hgetall("t:runs")
    assert set(runs) == {result.id for result in results}
    assert set(runs.values()) == {"1"}
    assert len({result.info()["attempts"][-1]["worker"] for result in results}) >= 4
    assert master.poll() is None
