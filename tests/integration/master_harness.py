"""Start a master as a subprocess and watch it: its sd_notify datagrams and its children."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
from helpers import wait_until

HERE = Path(__file__).resolve().parent


class NotifyListener:
    """A test NOTIFY_SOCKET: a thread collects every datagram the master sends.

    Read continuously, like systemd does: a datagram socket whose queue is
    full makes the sender wait.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[list[str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode().split("\n"))

    def poll(self) -> list[list[str]]:
        with self._lock:
            return list(self.messages)

    def states(self) -> list[str]:
        """READY=1, RELOADING=1, STOPPING=1 in the order sent."""
        wanted = ("READY=1", "RELOADING=1", "STOPPING=1")
        return [line for msg in self.poll() for line in msg if line in wanted]

    def count(self, line: str) -> int:
        return self.states().count(line)

    def wait_for(self, line: str, count: int = 1, timeout: float = 20.0) -> None:
        wait_until(lambda: self.count(line) >= count, timeout=timeout,
                   what=f"{count}x {line} (got {self.states()})")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.sock.close()


class MasterProcess:
    """A master in its own session, so a test can clean up the whole tree."""

    def __init__(self, command: Sequence[str], cwd: Path, env: dict[str, str] | None = None):
        self.cwd = cwd
        n = len(list(cwd.glob("master*.log")))  # several masters may share a test's cwd
        suffix = f"-{n}" if n else ""
        self.notify = NotifyListener(cwd / f"notify{suffix}.sock")
        self.log_path = cwd / f"master{suffix}.log"
        full_env = {**os.environ, **(env or {}), "NOTIFY_SOCKET": str(self.notify.path)}
        full_env.pop("WATCHDOG_USEC", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(command), cwd=cwd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    @classmethod
    def fake(cls, target: str, cwd: Path, **options: object) -> MasterProcess:
        import json

        command = [sys.executable, str(HERE / "fake_master.py"), target, json.dumps(options)]
        return cls(command, cwd)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        """Live (non-zombie) children of the master."""
        try:
            found = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        alive = []
        for child in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
        return alive

    def child_pids(self) -> set[int]:
        return {child.pid for child in self.children()}

    def wait_children(self, count: int, timeout: float = 20.0) -> set[int]:
        wait_until(lambda: len(self.child_pids()) == count, timeout=timeout,
                   what=f"{count} children (have {len(self.child_pids())})")
        return self.child_pids()

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"master did not exit within {timeout}s\n{self.log()}") from None

    def starts(self) -> list[tuple[int, int, int]]:
        path = self.cwd / "starts.log"
        if not path.exists():
            return []
        return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]  # type: ignore[misc]

    def stop(self) -> None:
        """Cleanup: whatever state the test left, no process of ours survives."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)
        self._log.close()
        self.notify.close()


class Masters:
    """`supervisor run` masters started by one test, stopped together at its end."""

    def __init__(self) -> None:
        self.started: list[MasterProcess] = []

    def run(self, cwd: Path, env: dict[str, str], *, workers: int, tasks: str,
            options: Sequence[str]) -> MasterProcess:
        command = [sys.executable, "-m", "supervisor", "run", "--workers", str(workers),
                   "--tasks", tasks, *options]
        master = MasterProcess(command, cwd, env=env)
        self.started.append(master)
        return master

    def stop_all(self) -> None:
        for master in self.started:
            master.stop()
