"""sd_notify on a real datagram socket; watchdog settings from the environment."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.master import systemd
from supervisor.master.systemd import Notifier, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_no_notify_socket_sends_nothing() -> None:
    notifier = Notifier(env={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_ready_with_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path})
    assert notifier.ready("2/2 workers up")
    assert receive(sock) == ["READY=1", "STATUS=2/2 workers up"]
    notifier.close()


def test_reloading_carries_monotonic_usec(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path})
    notifier.reloading()
    lines = receive(sock)
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    usec = int(lines[1].split("=", 1)[1])
    assert abs(usec - time.monotonic_ns() // 1000) < 60_000_000


def test_stopping_watchdog_and_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path})
    notifier.stopping()
    assert receive(sock) == ["STOPPING=1"]
    notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    notifier.status("a\nb")
    assert receive(sock) == ["STATUS=a b"]


def test_abstract_socket() -> None:
    name = f"supervisor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier(env={"NOTIFY_SOCKET": "@" + name}).ready()
        assert receive(sock) == ["READY=1"]
    finally:
        sock.close()


def test_missing_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_socket_address_forms() -> None:
    assert systemd.socket_address(None) is None
    assert systemd.socket_address("") is None
    assert systemd.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert systemd.socket_address("@abc") == b"\0abc"
    assert systemd.socket_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_watchdog_pid_must_be_ours() -> None:
    env = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 2.0
    assert watchdog_interval({**env, "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({**env, "WATCHDOG_PID": "123"}, pid=123) == 2.0


def test_a_receiver_that_does_not_read_never_blocks_the_sender(
    listener: tuple[socket.socket, str],
) -> None:
    _, path = listener
    notifier = Notifier(env={"NOTIFY_SOCKET": path})
    results = []
    while len(results) < 1000 and (not results or results[-1]):
        results.append(notifier.status(f"message {len(results)}"))
    assert results[0] is True
    assert results[-1] is False, "a full queue drops the message instead of waiting forever"
    notifier.close()
