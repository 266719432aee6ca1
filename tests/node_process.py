"""A `supervisor run` node as a test subprocess: started, signalled, killed, restarted.

Each node is a master started in its own session (process group = its pid),
so a whole node dies with one `killpg`. Used by the chaos suite and the
configuration-space test; the node's tasks, queues and environment are
the caller's.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def quiet_port(host: str = "127.0.0.1") -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it
    while the broker is down between a kill and its restart."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 29999)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-29999")


def node_env(redis_url: str, result_ttl: int, path: Path, **extra: str) -> dict[str, str]:
    """The environment of a node: ours without the developer's SUPERVISOR_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({
        "SUPERVISOR_REDIS_URL": redis_url,
        "SUPERVISOR_RESULT_TTL": str(result_ttl),
        "PYTHONPATH": os.pathsep.join([str(path), str(TESTS), str(ROOT)]),
        **extra,
    })
    return env


class Node:
    """One `supervisor run` master and its children; restartable under the same name."""

    def __init__(self, name: str, *, workers: int, redis_url: str, log_dir: Path,
                 heartbeat_timeout: float, result_ttl: int, tasks: str, cwd: Path,
                 queues: str = "default", max_crashes: int = 50,
                 prefix: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.name = name
        self.tasks = tasks
        self.queues = queues
        self.cwd = cwd  # where the task modules are (on the nodes' path)
        self.extra_env = env or {}
        self.options = options
        self.base_workers = workers
        self.workers = workers  # what the master was told (TTIN/TTOU)
        self.redis_url = redis_url
        self.log_path = log_dir / f"{name}.log"
        self.heartbeat_timeout = heartbeat_timeout
        self.result_ttl = result_ttl
        self.max_crashes = max_crashes
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnations = 0

    def command(self) -> list[str]:
        return [*self.prefix, sys.executable, "-m", "supervisor", "run",
                "--workers", str(self.base_workers), "--tasks", self.tasks,
                "--queues", self.queues, "--redis-url", self.redis_url,
                "--node-name", self.name, "--heartbeat-timeout", str(self.heartbeat_timeout),
                "--max-crashes", str(self.max_crashes), "--graceful-timeout", "30",
                "--log-format", "json", *self.options]

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        env = node_env(self.redis_url, self.result_ttl, self.cwd, **self.extra_env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.cwd, env=env,
                                            stdout=subprocess.DEVNULL, stderr=log,
                                            start_new_session=True)
        self.workers = self.base_workers
        self.incarnations += 1

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        if not self.running:
            return []
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def booted_children(self) -> int:
        count = 0
        for child in self.children():
            try:
                title = " ".join(child.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            if " idle" in title or " busy" in title:
                count += 1
        return count

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.booted_children() < self.workers:
            if not self.running:
                raise RuntimeError(f"node {self.name} exited: see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.name} not ready in {timeout}s")
            time.sleep(0.05)

    def last_error(self) -> str:
        """The last error line of the node's log (why it stopped on its own)."""
        lines = self.log_path.read_text(errors="replace").splitlines() if \
            self.log_path.exists() else []
        errors = [line for line in lines if '"level": "error"' in line or "Error" in line]
        return errors[-1][:300] if errors else "(no error logged)"

    def send(self, signum: int) -> None:
        if self.running:
            os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the master and every child at once (the whole node dies)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM (graceful stop) and wait; returns the exit code, None if it had to be killed."""
        if not self.running:
            return self.process.returncode if self.process else None
        self.send(signal.SIGTERM)
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            return None

    def wait(self, timeout: float) -> int | None:
        """Wait for the master to exit (after a signal); None if it had to be killed."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            return None

    def reap_group(self) -> None:
        """Leave nothing of this node behind (children of a killed master included)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
