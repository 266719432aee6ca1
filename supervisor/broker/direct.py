"""Hot-path commands sent without redis-py's per-call machinery.

redis-py's client spends tens of microseconds of Python on every command
(pool checkout with a fork check, a retry wrapper, observability hooks,
per-argument packing in a generator, reply callbacks). The few commands that
run per job or per batch (fetch, settle, enqueue) are packed here by hiredis
in C and sent on a connection made by the client's own pool, so the URL,
TLS, credentials, timeouts and reply decoding are the client's. Errors are
redis-py's own exceptions (ConnectionError, TimeoutError, ResponseError),
so callers' retry rules are unchanged.

Each thread gets its own connection (producers may be called from many
threads), made again after a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
from redis.exceptions import NoScriptError, ResponseError

# Bumped in every forked child (connections made before are the parent's) and
# when a topology changes (a Sentinel failover, see sentinel.py): each thread's
# connection is made again before its next command. One integer compare per
# command, the only cost on a single server.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


def invalidate() -> None:
    """Make every thread's direct connection again before its next command (the master moved)."""
    global _forks
    _forks += 1


def fork_count() -> int:
    """Bumped at each fork and each invalidate(): connections made before must go."""
    return _forks


os.register_at_fork(after_in_child=_forked)


class DirectCommands:
    """Send packed commands on a per-thread connection of `client`'s pool."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()

    def _connection(self) -> Any:
        local = self._local
        conn: Any = getattr(local, "conn", None)
        if conn is None or local.forks != _forks:
            if conn is not None and local.pid == os.getpid():
                conn.disconnect()  # ours, to a server that is no longer the master
            # A connection inherited across fork shares its socket with the
            # parent: never use it (nor shut it down), make this process's own.
            conn = local.conn = self._pool.make_connection()
            local.forks = _forks
            local.pid = os.getpid()
        if conn._sock is None:
            # Connect through connect(), never through send_packed_command's
            # own fallback: that one goes to the connection's host/port as
            # they stand (the pool's default address, or the last master),
            # skipping a Sentinel-managed connection's lookup of the master.
            conn.connect()
        return conn

    def call(self, *args: Any) -> Any:
        """One command, one round trip; raises ResponseError for an error reply."""
        conn = self._connection()
        try:
            conn.send_packed_command([hiredis.pack_command(args)], check_health=False)
            reply = conn.read_response(disconnect_on_error=True)
        except BaseException:
            # Interrupted between send and read (a signal, an error): the
            # reply may still be on the wire, so this connection must not be
            # reused as is; it reconnects on the next call.
            conn.disconnect()
            raise
        return reply

    def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Several commands in one round trip (a pipeline without MULTI).

        Every reply is read before any error is raised, so the connection
        stays in step; error replies are returned as ResponseError objects
        in their place (the caller decides), transport errors raise.
        """
        if not commands:
            return []
        packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)
        return self._exchange([packed], len(commands))

    def call_stream(self, commands: Iterable[Sequence[Any]]) -> list[Any]:
        """call_many for a lazy iterable: each command is sent as soon as it is made.

        Redis runs the first while the caller builds the next (enqueue_many's
        chunks); replies are read after the last is sent, as call_many does.
        """
        packed = (hiredis.pack_command(tuple(command)) for command in commands)
        return self._exchange(packed, None)

    def _exchange(self, packed: Iterable[bytes], count: int | None) -> list[Any]:
        """Send each packed part, then read one reply per command sent."""
        conn = self._connection()
        replies: list[Any] = []
        try:
            sent = 0
            for part in packed:
                conn.send_packed_command([part], check_health=False)
                sent += 1
            for _ in range(sent if count is None else count):
                try:
                    replies.append(conn.read_response(disconnect_on_error=True))
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            # Making or sending a command failed part way, or a signal hit:
            # replies may be on the wire, so the connection must not be reused.
            conn.disconnect()
            raise
        return replies


class DirectScript:
    """A Lua script run by EVALSHA on DirectCommands, loaded on NOSCRIPT."""

    def __init__(self, commands: DirectCommands, script: Any) -> None:
        # `script` is redis-py's Script (scripts.load): its sha and source.
        self.commands = commands
        self.sha: str = script.sha
        self.source: str = script.script

    def args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        """The EVALSHA command as a tuple (for call_many)."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.run(self.args(keys, args))

    def run(self, command: Sequence[Any]) -> Any:
        """Send an EVALSHA command of this script (from args())."""
        try:
            return self.commands.call(*command)
        except NoScriptError:
            # A restarted or flushed server forgot the script: load it, run again.
            self.load()
            return self.commands.call(*command)

    def load(self) -> None:
        self.commands.call("SCRIPT", "LOAD", self.source)


def raise_error_reply(replies: Iterable[Any]) -> None:
    """Raise the first error reply of call_many/call_stream, if any."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
