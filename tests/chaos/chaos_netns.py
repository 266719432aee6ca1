"""A second "host" on this machine: a network namespace joined by a veth pair.

Names are unique per run; the /30 is taken from 172.31.250.0/24 among the
blocks no interface of this machine uses, with the outer end (.1 of the
block) in the root namespace and the inner end (.2) in the namespace.
Traffic never leaves the machine. `close()` deletes the link, the namespace
and any process left in it, whatever state the test left them in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import subprocess


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def free_block() -> tuple[str, str]:
    """Outer and inner address of a /30 in 172.31.250.0/24 that no interface uses."""
    used = ip("-o", "-4", "addr", "show").stdout
    blocks = list(ipaddress.IPv4Network("172.31.250.0/24").subnets(new_prefix=30))
    random.shuffle(blocks)
    for block in blocks:
        outer, inner = str(block.network_address + 1), str(block.network_address + 2)
        if f" {outer}/" not in used and f" {inner}/" not in used:
            return outer, inner
    raise RuntimeError("no free /30 in 172.31.250.0/24")


class NetNs:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"
        self.name = f"svchaos{tag}"
        self.outer = f"svo{tag}"
        self.inner = f"svi{tag}"
        self.outer_ip, self.inner_ip = free_block()

    def open(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        ip("link", "set", self.inner, "netns", self.name)
        ip("addr", "add", f"{self.outer_ip}/30", "dev", self.outer)
        ip("link", "set", self.outer, "up")
        self.exec_ip("addr", "add", f"{self.inner_ip}/30", "dev", self.inner)
        self.exec_ip("link", "set", self.inner, "up")
        self.exec_ip("link", "set", "lo", "up")

    def exec_ip(self, *args: str) -> None:
        ip("netns", "exec", self.name, "ip", *args)

    @property
    def prefix(self) -> tuple[str, ...]:
        """Command prefix that runs a program inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def cut(self) -> None:
        ip("link", "set", self.outer, "down")

    def restore(self) -> None:
        ip("link", "set", self.outer, "up")

    def close(self) -> None:
        pids = ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("link", "del", self.outer, check=False)
        ip("netns", "del", self.name, check=False)
