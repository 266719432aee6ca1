"""Processes of a chaos run: a broker Redis, a ledger Redis and `supervisor run` nodes.

Each node is a master started in its own session (process group = its pid),
so a whole node dies with one `killpg`. The broker server is private to the
run (append-only, `appendfsync always`) because the harness kills and
restarts it; the ledger server holds the executions the task records and
is never touched by faults.
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
import redis
from redis_server import RedisServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


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


def node_env(redis_url: str, ledger_url: str, node: str, result_ttl: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({
        "SUPERVISOR_REDIS_URL": redis_url,
        "SUPERVISOR_RESULT_TTL": str(result_ttl),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        "CHAOS_LEDGER_URL": ledger_url,
        "CHAOS_NODE": node,
    })
    return env


class Node:
    """One `supervisor run` master and its children; restartable under the same name."""

    def __init__(self, name: str, *, workers: int, redis_url: str, ledger_url: str,
                 log_dir: Path, heartbeat_timeout: float, result_ttl: int,
                 max_crashes: int = 50, prefix: tuple[str, ...] = ()) -> None:
        self.name = name
        self.base_workers = workers
        self.workers = workers  # what the master was told (TTIN/TTOU)
        self.redis_url = redis_url
        self.ledger_url = ledger_url
        self.log_path = log_dir / f"{name}.log"
        self.heartbeat_timeout = heartbeat_timeout
        self.result_ttl = result_ttl
        self.max_crashes = max_crashes
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnations = 0

    def command(self) -> list[str]:
        return [*self.prefix, sys.executable, "-m", "supervisor", "run",
                "--workers", str(self.base_workers), "--tasks", "chaos_tasks",
                "--queues", "default", "--redis-url", self.redis_url,
                "--node-name", self.name, "--heartbeat-timeout", str(self.heartbeat_timeout),
                "--max-crashes", str(self.max_crashes), "--graceful-timeout", "30",
                "--log-format", "json"]

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        env = node_env(self.redis_url, self.ledger_url, self.name, self.result_ttl)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=HERE, env=env,
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

    def reap_group(self) -> None:
        """Leave nothing of this node behind (children of a killed master included)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)


class Cluster:
    """The broker, the ledger and `size` nodes named chaos-1..chaos-N."""

    def __init__(self, workdir: Path, *, size: int = 3, workers: int = 2,
                 heartbeat_timeout: float = 3.0, result_ttl: int = 15) -> None:
        self.workdir = workdir
        self.broker = RedisServer(workdir / "broker", quiet_port())
        self.ledger_server = RedisServer(workdir / "ledger", quiet_port(),
                                         "--appendfsync", "everysec")
        self.heartbeat_timeout = heartbeat_timeout
        self.result_ttl = result_ttl
        log_dir = workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [
            Node(f"chaos-{i}", workers=workers, redis_url=self.broker.url,
                 ledger_url=self.ledger_server.url, log_dir=log_dir,
                 heartbeat_timeout=heartbeat_timeout, result_ttl=result_ttl)
            for i in range(1, size + 1)
        ]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker.url, decode_responses=True, socket_timeout=5)

    def ledger(self) -> redis.Redis:
        return redis.Redis.from_url(self.ledger_server.url, decode_responses=True)

    def start(self) -> None:
        self.broker.start()
        self.ledger_server.start()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            if node.running:
                node.send(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=35)
            node.reap_group()
        self.broker.stop()
        self.ledger_server.stop()
