"""Fixtures of the CLI end-to-end tests (the harness is cli_harness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import (
    ROOT,
    Cli,
    Jobs,
    StartWorker,
    WorkerProcess,
)
from helpers import wait_until

from supervisor.api.producer import Producer
from supervisor.config import load_config


@pytest.fixture
def cli(redis_url: str) -> Cli:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SUPERVISOR_")}
    env.update({
        "SUPERVISOR_REDIS_URL": redis_url,
        # Workers run from tmp_path import `supervisor` / `tasks.examples` from here.
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",  # typer's help is not wrapped mid-line
        "NO_COLOR": "1",
        "TERM": "dumb",
        # These tests dead-letter jobs of unknown tasks on purpose: at once, not
        # after the 60 s a worker gives them back for one that knows the task
        # (that path is tests/integration/test_bad_input.py's).
        "SUPERVISOR_UNKNOWN_TASK_WAIT": "0",
    })
    return Cli(redis_url, env)


@pytest.fixture
def jobs(redis_url: str) -> Iterator[Jobs]:
    producer = Producer(load_config({"redis_url": redis_url}))
    yield Jobs(producer)
    producer.client.close()


@pytest.fixture
def start_worker(cli: Cli, tmp_path: Path) -> Iterator[StartWorker]:
    """Start `supervisor worker`; returns once it logs that it is consuming."""
    started: list[WorkerProcess] = []

    def start(tasks: str = "tasks.examples", queues: str = "default,reports",
              cwd: Path = ROOT) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "supervisor", "worker", "--tasks", tasks,
                 "--queues", queues],
                cwd=cwd, env=cli.env, stdout=out, stderr=subprocess.STDOUT,
            )
        handle = WorkerProcess(process, log)
        started.append(handle)

        def consuming() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited ({process.returncode}):\n{handle.output()}")
            return " consuming " in handle.output()

        wait_until(consuming, timeout=15, what="worker says it is consuming")
        return handle

    yield start
    for handle in started:  # a failed test must not leave a worker behind
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait()
