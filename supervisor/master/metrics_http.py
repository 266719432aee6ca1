"""`/metrics` served by the master without a thread: a non-blocking socket polled each tick.

Why not `prometheus_client.start_http_server`: it runs a thread in the
master, and the master forks. A child forked while that thread holds a lock
(logging's, the import lock, an allocator's) inherits the lock held by a
thread that does not exist in the child, and may deadlock at its first
log line. A helper child serving HTTP would avoid that, but it is one more
process to supervise and would skew the pool's books. So the master polls a
non-blocking listening socket from its own loop: each tick it accepts what
is waiting, reads what has arrived, and writes what the socket takes. Nothing
here ever blocks; a scrape waits at most one tick (0.2 s) per step.

Rendering reads the children's multiprocess files (worker/metrics.py) plus
the master's own numbers (`MasterCollector`): the master writes no metric
files. The directory reaches each child in its ChildContext.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from supervisor.errors import ConfigError

# Idle clients (a slowloris, or just many half-open scrapers) must never keep
# a scrape out: a connection has HEADER_TIMEOUT seconds to send its request,
# and at the cap the oldest connection still sending its request makes room.
MAX_CONNECTIONS = 64
LISTEN_BACKLOG = 128
MAX_REQUEST = 16 * 1024
_PREFIX = "supervisor-metrics-"  # + master pid + "-" + random
HEADER_TIMEOUT = 2.0  # seconds to send the request line and headers
CONNECTION_DEADLINE = 5.0  # seconds a scrape may take before it is dropped
# Reasons of supervisor_child_restarts_total (observer.restart_reason), shown from 0.
RESTART_REASONS = ("crashed", "hung", "timeout", "memory", "max_jobs", "reload", "boot_failure")


def make_multiproc_dir() -> str:
    """A private directory for the children's metric files (made before the first fork)."""
    _remove_orphans(tempfile.gettempdir())
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")


def _remove_orphans(parent: str) -> None:
    """Directories left by masters that were SIGKILLed (their pid is in the name)."""
    import psutil

    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            rest = entry.name[len(_PREFIX):] if entry.name.startswith(_PREFIX) else ""
            pid = rest.split("-", 1)[0]
            if pid.isdigit() and entry.is_dir() and not psutil.pid_exists(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)


def remove_multiproc_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def mark_child_dead(pid: int, path: str) -> None:
    """Drop a reaped child's live gauges (its counters stay: no reset on recycling)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, path)


@dataclass(frozen=True, slots=True)
class MasterNumbers:
    """What the master itself contributes to a scrape."""

    workers_up: int
    workers_target: int
    generation: int
    restarts: dict[str, int]  # by reason, since the master started


class MasterCollector:
    """A prometheus_client collector of the master's own numbers (read at scrape time)."""

    def __init__(self, numbers: Callable[[], MasterNumbers]) -> None:
        self.numbers = numbers

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        now = self.numbers()
        yield GaugeMetricFamily("supervisor_workers_up",
                                "Booted workers serving (not retiring).", value=now.workers_up)
        yield GaugeMetricFamily("supervisor_workers_target", "Workers the master aims for.",
                                value=now.workers_target)
        yield GaugeMetricFamily("supervisor_generation",
                                "Generation of the serving workers (bumped by each reload).",
                                value=now.generation)
        restarts = CounterMetricFamily("supervisor_child_restarts",
                                       "Children replaced, by reason.", labels=["reason"])
        for reason, count in sorted({**dict.fromkeys(RESTART_REASONS, 0),
                                     **now.restarts}.items()):
            restarts.add_metric([reason], count)
        yield restarts


def render(path: str, collector: MasterCollector) -> tuple[bytes, str]:
    """The exposition text of the children's files plus the master's numbers."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass(slots=True)
class _Connection:
    sock: socket.socket
    opened: float
    request: bytearray = field(default_factory=bytearray)
    response: bytes | None = None

    def expired(self, now: float) -> bool:
        if self.response is None:  # still sending its request
            return now >= self.opened + HEADER_TIMEOUT
        return now >= self.opened + CONNECTION_DEADLINE


class MetricsServer:
    """The listening socket and the scrapes in progress. `poll(now)` once per tick."""

    def __init__(self, bind: str, port: int, page: Callable[[], tuple[bytes, str]]) -> None:
        self.page = page
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((bind, port))
            self.sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            self.sock.close()
            raise ConfigError(f"cannot serve metrics on {bind}:{port}: {exc.strerror or exc}; "
                              "choose another --metrics-port or --metrics-bind") from None
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.connections: list[_Connection] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll(self, now: float) -> None:
        """Accept, read, answer, as far as possible without waiting."""
        self._accept(now)
        for conn in list(self.connections):
            try:
                done = self._advance(conn)
            except OSError:
                done = True
            if done or conn.expired(now):
                self._drop(conn)

    def _accept(self, now: float) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self.connections) >= MAX_CONNECTIONS and not self._make_room():
                sock.close()
                continue
            sock.setblocking(False)
            self.connections.append(_Connection(sock, now))

    def _make_room(self) -> bool:
        """Drop the oldest connection still sending its request; False if none is."""
        waiting = [conn for conn in self.connections if conn.response is None]
        if not waiting:
            return False
        self._drop(min(waiting, key=lambda conn: conn.opened))
        return True

    def _advance(self, conn: _Connection) -> bool:
        """One non-blocking step of a connection; True once it is finished."""
        if conn.response is None:
            try:
                data = conn.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return False
            if not data:
                return True
            conn.request += data
            if b"\r\n\r\n" not in conn.request and len(conn.request) < MAX_REQUEST:
                return False
            conn.response = self._respond(bytes(conn.request))
        try:
            sent = conn.sock.send(conn.response)
        except (BlockingIOError, InterruptedError):
            return False
        conn.response = conn.response[sent:]
        return not conn.response

    def _respond(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].decode("latin-1", "replace").split()
        method, target = (line[0], line[1]) if len(line) >= 2 else ("", "")
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _http(405, b"method not allowed\n", "text/plain")
        if path not in ("/metrics", "/"):
            return _http(404, b"not found: try /metrics\n", "text/plain")
        try:
            body, content_type = self.page()
        except Exception as exc:  # noqa: BLE001 - a broken scrape must not stop the master
            return _http(500, f"cannot render metrics: {exc}\n".encode(), "text/plain")
        return _http(200, b"" if method == "HEAD" else body, content_type, len(body))

    def _drop(self, conn: _Connection) -> None:
        with contextlib.suppress(OSError):
            conn.sock.close()
        self.connections.remove(conn)

    def close(self) -> None:
        for conn in list(self.connections):
            self._drop(conn)
        with contextlib.suppress(OSError):
            self.sock.close()


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}


def _http(status: int, body: bytes, content_type: str, length: int | None = None) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("latin-1") + body
