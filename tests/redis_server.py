"""A private Redis server for the test session: started on a free port, stopped after.

Uses `redis-server` from PATH when present, else the embedded binary, so a
machine without Redis installed passes too. Never touches a server it did
not start.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from supervisor.broker.embedded import server_binary as embedded_binary

    return embedded_binary()


class RedisServer:
    """One private server process with an append-only file in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, *extra: str,
                 password: str | None = None) -> None:
        self.data_dir = data_dir
        self.password = password  # also given to the server (--requirepass)
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--logfile", str(self.data_dir / "server.log"),
            *self.extra,
            *(("--requirepass", self.password) if self.password else ()),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, password=self.password)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"test redis exited: see {self.data_dir}/server.log"
                    ) from None
            if time.monotonic() > deadline:
                raise RuntimeError("test redis did not start")
            time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
