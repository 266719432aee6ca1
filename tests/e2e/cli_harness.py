"""Harness of the CLI end-to-end tests: run `python -m supervisor ...`, set up jobs, workers.

The command under test always runs as a subprocess against the session's
private Redis; jobs are set up through the library in this process when the
CLI is not what a test is about (every CLI start costs ~0.5 s of imports).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import wait_until

from supervisor.api.producer import Producer
from supervisor.api.result import AsyncResult
from supervisor.broker.inspect import queue_stats

ROOT = Path(__file__).resolve().parents[2]
# Bound for one CLI call; the slowest (enqueue against a dead Redis) gives up
# after ~10 s of retries by design.
CLI_TIMEOUT = 30.0
WAIT = "15"  # --wait for a job that a running worker picks up at once

# Task modules the repo does not have, written into tmp_path for a worker.
ECHO_TASKS = """
from supervisor import task


@task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}
"""

LATE_TASKS = """
from supervisor import task


@task
def mul(x, y):
    return x * y
"""


# --- harness ------------------------------------------------------------------


@dataclass
class Cli:
    """Runs the CLI against the private Redis with an explicit environment."""

    redis_url: str
    env: dict[str, str]

    def __call__(self, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return self.many(args, env=env)[0]

    def many(self, *commands: Sequence[str],
             env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands side by side; each result in order."""
        started = [
            (list(args), subprocess.Popen(
                [sys.executable, "-m", "supervisor", *args], cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for args in commands
        ]
        done = []
        for args, process in started:
            try:
                out, err = process.communicate(timeout=CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise AssertionError(f"{args} did not finish within {CLI_TIMEOUT}s") from None
            done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
        return done

    def ok(self, *args: str) -> str:
        """Run, assert exit 0, return stdout."""
        done = self(*args)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def enqueue(self, *args: str) -> str:
        """`enqueue ARGS`; the job id it printed."""
        job_id = self.ok("enqueue", *args).strip()
        assert job_id and "\n" not in job_id
        return job_id

    def stats(self) -> dict[str, dict[str, Any]]:
        """`queues --json`, keyed by queue name."""
        return {item["queue"]: item for item in self.json("queues")}


def counts(waiting: int = 0, running: int = 0, scheduled: int = 0, dead: int = 0,
           paused: bool = False, chords: int = 0, workflows_running: int = 0,
           workflows_succeeded: int = 0, workflows_failed: int = 0) -> dict[str, Any]:
    """A row of `queues --json` (without its name)."""
    return {"waiting": waiting, "running": running, "scheduled": scheduled, "dead": dead,
            "paused": paused, "chords": chords, "workflows_running": workflows_running,
            "workflows_succeeded": workflows_succeeded, "workflows_failed": workflows_failed}


def numbers(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`queues --json` without the queue names repeated inside."""
    return {name: {k: v for k, v in item.items() if k != "queue"} for name, item in stats.items()}


@dataclass
class Jobs:
    """In-process setup and waiting (not under test): the library's producer."""

    producer: Producer

    def add(self, task: str, *args: Any, queue: str = "default", countdown: float | None = None,
            **kwargs: Any) -> str:
        return self.producer.submit_named(task, queue, args, kwargs, countdown=countdown).id

    def state(self, job_id: str) -> str:
        return AsyncResult[Any](job_id, client=self.producer.client).state

    def stats(self, queue: str) -> dict[str, int]:
        """Queue numbers read in-process, for waiting (assertions use `queues --json`)."""
        return queue_stats(self.producer.client, queue).as_dict()

    def settle(self, *job_ids: str) -> None:
        """Wait until every job has succeeded or failed for good."""
        wait_until(lambda: all(self.state(j) in ("succeeded", "failed") for j in job_ids),
                   timeout=15, what=f"jobs {job_ids} finish")


@dataclass
class WorkerProcess:
    """A foreground `supervisor worker`; its combined output goes to `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (finish the current job and exit); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker ignored SIGTERM for {timeout}s:\n{self.output()}") from None


StartWorker = Callable[..., WorkerProcess]


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """A user error: exactly one `error:` line on stderr, no traceback, nothing on stdout."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "", done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


