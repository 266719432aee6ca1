"""The dashboard as a test subprocess (`supervisor ui ...`), and a client for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from helpers import wait_until
from node_process import ROOT, TESTS
from redis_server import free_port

from supervisor.api.producer import Producer
from supervisor.broker.inspect import find_dead

TOKEN = "s3cret-ui-token"
ARTIFACTS = ROOT / "tmp" / "artifacts"  # screenshots and logs of the UI tests (not committed)


class UiProcess:
    """One `supervisor ui` on a free port; stopped with SIGTERM by its pid."""

    def __init__(self, redis_url: str, log_dir: Path, *options: str,
                 token: str | None = None) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.token = token
        self.options = options
        self.log_path = log_dir / f"ui-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        base = ""
        if "--base-path" in self.options:
            base = self.options[self.options.index("--base-path") + 1].rstrip("/")
        return f"http://127.0.0.1:{self.port}{base}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "supervisor", "ui", "--port", str(self.port),
                "--redis-url", self.redis_url, *self.options]

    def start(self, timeout: float = 20.0) -> UiProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT)])
        if self.token:
            env["SUPERVISOR_UI_TOKEN"] = self.token
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"supervisor ui exited: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/static/app.js", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()  # never left running behind a failed test
                raise RuntimeError(f"supervisor ui not up in {timeout}s: {self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def client(self, token: str | None = None) -> httpx.Client:
        """A client of the API; with the dashboard's token unless another is given."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def run_job(producer: Producer, task: str, *args: Any, timeout: float = 30,
            queue: str = "default") -> str:
    """Enqueue `task(*args)` and wait until it has finished; its job id."""
    result = producer.submit_named(task, queue, args, {})
    wait_until(lambda: result.state in ("succeeded", "failed"), timeout,
               what=f"job {result.id} of {task} finished")
    return result.id


def dead_job(producer: Producer, rclient: redis.Redis, *args: Any) -> tuple[str, str]:
    """A job of ui_tasks.fragile that died (its switch on); (job id, switch key)."""
    switch = f"ui:switch:{time.monotonic_ns()}"
    rclient.set(switch, "1")
    job_id = run_job(producer, "ui_tasks.fragile", switch, *args)
    wait_until(lambda: find_dead(rclient, job_id, ["default"]), 10,
               what=f"dead letter of {job_id}")
    return job_id, switch
