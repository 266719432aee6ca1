"""One live master per node name and Redis on a host: a second one is refused at start.

Two pools started on one host without `--node-name` both take the host name.
Their workers then refresh one heartbeat key and overwrite one published
node state (`status` shows one node with 2/2 workers while 4 run), and each
pool's recovery treats the other's consumers as its own. So the master holds
a lock named after its node name and its Redis server and database, and a
second master asking for the same refuses to start (exit 2) naming the holder.

Why a local lock and not a look at the node state in Redis: the master never
talks to Redis, and the collision that happens by default is on one host
(the default node name is the host name; two hosts share one only when their
host names are equal). Why keyed by Redis too: pools on one host that use
different Redis servers (several test suites, staging and production) do not
meet, whatever their node names.

The lock is an abstract unix socket (Linux): bound while the master lives,
freed by the kernel when it dies, even by SIGKILL (no stale file to clean),
and unaffected by systemd's PrivateTmp= (a file in /tmp would be per unit).
Its holder is found with SO_PEERCRED. Abstract sockets belong to a network
namespace: a pool in another one (a container) does not see it, and needs
no such lock.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct

from supervisor.errors import ConfigError
from supervisor.redis_url import embedded_dir, where


def lock_name(node: str, redis_url: str) -> bytes:
    """The abstract socket address for this node name on this Redis server and database."""
    if redis_url.startswith("embedded://"):
        target = f"embedded:{embedded_dir(redis_url)}"
    else:
        place = where(redis_url)
        target = f"{place.server}/{place.db}"
    digest = hashlib.sha256(f"{target}\0{node}".encode()).hexdigest()[:32]
    return b"\0supervisor-node-" + digest.encode()


class NodeLock:
    """Held from `acquire` until `close` (or the process's death)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def acquire(cls, node: str, redis_url: str) -> NodeLock:
        """Take the lock; ConfigError naming the master that holds it."""
        address = lock_name(node, redis_url)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(address)
            sock.listen(1)  # so that a refused master can ask who holds it
        except OSError:
            sock.close()
            holder = _holder(address)
            raise ConfigError(
                f"node name {node!r} is taken on this host by another master using the same "
                f"Redis{f' (pid {holder})' if holder else ''}; give each pool its own "
                "--node-name (SUPERVISOR_NODE_NAME)") from None
        return cls(sock)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _holder(address: bytes) -> int | None:
    """The pid of the process listening on `address`, if it can be told."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(0.5)
    try:
        probe.connect(address)
        credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                       struct.calcsize("3i"))
        pid, _, _ = struct.unpack("3i", credentials)
        return pid or None
    except OSError:
        return None
    finally:
        probe.close()
