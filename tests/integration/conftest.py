"""Fixtures for integration tests: worker subprocesses on the private Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from supervisor.broker.streams import Broker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({"SUPERVISOR_REDIS_URL": redis_url,
                "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]), **extra})
    return env


@pytest.fixture
def start_worker(redis_url: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `supervisor worker` subprocesses; SIGTERM whatever is left at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(tasks: str = "sample_tasks", queues: str = "default", url: str | None = None,
              **extra: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "worker", "--tasks", tasks, "--queues", queues],
            cwd=HERE, env=worker_env(url or redis_url, **extra),
        )
        started.append(process)
        return process

    yield start
    stop_all(started)


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM whatever still runs (graceful), SIGKILL what does not stop in time."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MasterPopen(subprocess.Popen[bytes]):
    """A master started by `start_master`; its log (stderr) is in `log_path`."""

    log_path: Path


@pytest.fixture
def start_master(redis_url: str,
                 tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `supervisor run` masters (stderr to tmp_path/master-N.log); stop them at teardown.

    Not a pipe: nobody reads it, and a master blocked writing its log into a full pipe
    cannot stop.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, tasks: str = "sample_tasks",
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        path = tmp_path / f"master-{len(started)}.log"
        with open(path, "wb") as log:
            process = MasterPopen(
                [sys.executable, "-m", "supervisor", "run", "--tasks", tasks, *args],
                cwd=HERE, env=worker_env(redis_url, **(env or {})), stderr=log,
            )
        process.log_path = path
        started.append(process)
        return process

    yield start
    stop_all(started)


@pytest.fixture
def producer(redis_url: str) -> Iterator[None]:
    """Point this process's producer at the private Redis."""
    import supervisor.api.producer as producer_module

    producer_module._overrides.clear()
    producer_module.configure(redis_url=redis_url)
    yield
    producer_module._overrides.clear()
    producer_module._producer = None


@pytest.fixture
def broker(redis_url: str) -> Broker:
    """A Broker of the test's private server, with queue "q"'s group made (the broker-level
    tests: cancel, priority levels, limits on levels)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    made = Broker(client)
    made.ensure_groups(["q"])
    return made
