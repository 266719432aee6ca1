"""sd_notify without dependencies: datagrams to $NOTIFY_SOCKET.

`Notifier` sends `KEY=VALUE` lines to the socket systemd names in
NOTIFY_SOCKET (a path, or an abstract socket written with a leading '@').
Without NOTIFY_SOCKET every call is a no-op, so the master runs the same way
from a shell. Send errors are logged at debug level and otherwise ignored:
a missing systemd must never stop the master. A datagram socket blocks the
sender when the receiver's queue is full, so every send has a short timeout:
the master's loop must never hang on its notifier.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("supervisor.master")

SEND_TIMEOUT = 0.1  # seconds; a message that cannot go out by then is dropped


def socket_address(value: str | None) -> str | bytes | None:
    """The address to send to, from NOTIFY_SOCKET's value (None: nothing to send to)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not supported


class Notifier:
    """Speaks the sd_notify protocol to systemd (or to nobody)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = socket_address(env.get("NOTIFY_SOCKET"))
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send the lines as one datagram; True if it was sent."""
        if self.address is None or not lines:
            return False
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                self._socket = socket.socket(socket.AF_UNIX, kind)
                self._socket.settimeout(SEND_TIMEOUT)
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        # Type=notify-reload (systemd >= 253) wants MONOTONIC_USEC with RELOADING=1.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Pacer:
    """Paces the loop's routine messages: STATUS= on change (at most once per
    `status_every` seconds, so a busy pool does not flood systemd) and
    WATCHDOG=1 every `watchdog_every` seconds (None: systemd did not ask)."""

    def __init__(self, notifier: Notifier, watchdog_every: float | None,
                 status_every: float = 1.0) -> None:
        self.notifier = notifier
        self.watchdog_every = watchdog_every
        self.status_every = status_every
        self._status = ""
        self._status_at = float("-inf")
        self._watchdog_at = float("-inf")

    def tick(self, now: float, status: str) -> None:
        if status != self._status and now - self._status_at >= self.status_every:
            self._status, self._status_at = status, now
            self.notifier.status(status)
        if self.watchdog_every and now - self._watchdog_at >= self.watchdog_every:
            self._watchdog_at = now
            self.notifier.watchdog()


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return ("STATUS=" + text.replace("\n", " "),)


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None if not asked.

    WATCHDOG_PID, when set, must name this process: the variables may have
    been inherited from a parent that systemd watches, not us.
    """
    env = os.environ if env is None else env
    raw_usec = env.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID")
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != (os.getpid() if pid is None else pid):
            return None
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2
