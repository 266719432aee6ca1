"""Redis Cluster: the client, and the hot path's packed commands routed to the slot's owner.

redis-py's RedisCluster routes its own commands (and follows MOVED / ASK);
the hot path (direct.py) sends hiredis-packed commands on raw connections,
so here each command is sent to the master that owns its key's slot, on a
per-thread, per-node connection, and the cluster's answers are followed:

- MOVED: the slot map is read again and the command sent to the new owner;
- ASK (a slot being migrated): ASKING + the command, to the importing node;
- TRYAGAIN (a multi-key script while its slot is half moved): a few quick
  tries, then the error goes to the caller, who waits it out with backoff;
- CLUSTERDOWN / a node that does not answer (a master killed, its replica
  not yet promoted): the slot map is read again and the error goes to the
  caller (TRANSIENT_ERRORS), who retries: every hot-path command is
  idempotent.

Every command we send names its key where this module finds it (see
`_key_of`); all keys of one script share the queue's `{queue}` hash tag.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, MovedError, ResponseError, TryAgainError

import supervisor.redis_url as urls
from supervisor.broker import direct

log = logging.getLogger("supervisor.broker")

MAX_REDIRECTS = 8  # MOVED / ASK / TRYAGAIN followed per command before giving up
TRYAGAIN_PAUSE = 0.005  # seconds, doubled per try: a slot's keys move within milliseconds


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A RedisCluster client for a `redis+cluster://` URL (seeds: any of its nodes)."""
    found = urls.deployment(url)
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in found.hosts],
                        **cluster_options(found, options))


def cluster_options(found: urls.Deployment, options: dict[str, Any]) -> dict[str, Any]:
    """The client options of a cluster URL (TLS, user, password) over `options` (the
    sync and the asyncio RedisCluster take the same)."""
    options = dict(options)
    params = dict(found.params)
    for name in ("retry", "retry_on_error"):
        options.pop(name, None)  # RedisCluster retries MOVED/ASK itself: keep its own
    if found.tls:
        options["ssl"] = True
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"):
            if name in params:
                options[name] = params[name]
    if found.username:
        options["username"] = found.username
    if found.password is not None:
        options["password"] = found.password
    return options


def commands_for(client: Any) -> Any:
    """The hot path's command sender for `client`: routed per slot on a cluster."""
    if isinstance(client, RedisCluster):
        return ClusterCommands(client)
    return direct.DirectCommands(client)


def _key_of(args: Sequence[Any]) -> Any:
    """The key that routes one of our hot-path commands (None: any node, e.g. SCRIPT)."""
    name = str(args[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return args[3] if int(args[2]) > 0 else None
    if name == "XREADGROUP":
        for index, arg in enumerate(args):
            if str(arg).upper() == "STREAMS":
                return args[index + 1]
        return None
    if name == "SCRIPT":
        return None
    return args[1]


class ClusterCommands:
    """DirectCommands for a cluster: call, call_many and call_stream, routed by key."""

    def __init__(self, client: RedisCluster) -> None:
        self.cluster = client
        self._local = threading.local()

    # --- routing ----------------------------------------------------------

    def _node_for(self, key: Any) -> Any:
        slot = self.cluster.keyslot(key)
        return self.cluster.nodes_manager.get_node_from_slot(slot)

    def _connection(self, node: Any) -> Any:
        local = self._local
        if getattr(local, "forks", None) != (direct.fork_count(), os.getpid()):
            local.conns = {}  # made before a fork: the parent's sockets
            local.forks = (direct.fork_count(), os.getpid())
        conn = local.conns.get(node.name)
        if conn is None:
            conn = local.conns[node.name] = \
                node.redis_connection.connection_pool.make_connection()
        if conn._sock is None:
            conn.connect()
        return conn

    def refresh(self) -> None:
        """Read the slot map again (after MOVED, CLUSTERDOWN or a node that went away)."""
        # No node answering yet is fine: the caller's retry comes back here.
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            self.cluster.nodes_manager.initialize()

    def _forget(self, conn: Any) -> None:
        conn.disconnect()
        for name, known in list(self._local.conns.items()):
            if known is conn:
                del self._local.conns[name]

    # --- sending ----------------------------------------------------------

    def _send(self, conn: Any, packed: list[bytes], count: int) -> list[Any]:
        """Send packed commands on `conn`, read `count` replies (errors in place)."""
        replies: list[Any] = []
        try:
            conn.send_packed_command(packed, check_health=False)
            for _ in range(count):
                try:
                    replies.append(conn.read_response(disconnect_on_error=True))
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            self._forget(conn)
            raise
        return replies

    def call(self, *args: Any) -> Any:
        """One command to the owner of its key's slot, following MOVED / ASK / TRYAGAIN."""
        if str(args[0]).upper() == "SCRIPT":
            return self._everywhere(args)
        key = _key_of(args)
        node = self._node_for(key) if key is not None else self.cluster.get_random_node()
        asking = False
        packed = hiredis.pack_command(tuple(args))
        pause = TRYAGAIN_PAUSE
        for attempt in range(MAX_REDIRECTS):
            try:
                conn = self._connection(node)
                if asking:
                    reply = self._send(conn, [hiredis.pack_command(("ASKING",)), packed], 2)[1]
                else:
                    reply = self._send(conn, [packed], 1)[0]
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self.refresh()  # a master killed: its replica takes the slots over
                raise
            asking = False
            if isinstance(reply, AskError):
                node, asking = self._node_at(reply.host, reply.port), True
            elif isinstance(reply, MovedError):
                self.refresh()
                node = self._node_at(reply.host, reply.port)
            elif isinstance(reply, TryAgainError) and attempt < MAX_REDIRECTS - 1:
                time.sleep(pause)
                pause *= 2
                node = self._node_for(key)
            elif isinstance(reply, redis.exceptions.ClusterDownError):
                self.refresh()
                raise reply
            elif isinstance(reply, ResponseError):
                raise reply
            else:
                return reply
        raise TryAgainError(f"slot of {key!r} still moving after {MAX_REDIRECTS} tries")

    def _node_at(self, host: str, port: int) -> Any:
        node = self.cluster.get_node(host=host, port=port)
        if node is None:
            self.refresh()
            node = self.cluster.get_node(host=host, port=port)
        if node is None:
            raise redis.exceptions.ConnectionError(f"cluster node {host}:{port} is unknown")
        return node

    def _everywhere(self, args: Sequence[Any]) -> Any:
        """SCRIPT LOAD and the like: on every master (a script runs where its keys are).

        A master that does not answer is skipped (it runs nothing meanwhile, and a
        script it lacks later is loaded on its NOSCRIPT): a shard down must not keep
        the others from their scripts. Raised only if none answered.
        """
        reply: Any = None
        unreachable: BaseException | None = None
        answered = False
        for node in self.cluster.get_primaries():
            try:
                reply = self._send(self._connection(node),
                                   [hiredis.pack_command(tuple(args))], 1)[0]
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                unreachable = exc
                continue
            if isinstance(reply, ResponseError):
                raise reply
            answered = True
        if not answered and unreachable is not None:
            self.refresh()
            raise unreachable
        return reply

    def call_many(self, commands: Sequence[Sequence[Any]], *,
                  in_place: bool = False) -> list[Any]:
        """Several commands, one round trip per node; errors in place as DirectCommands does.

        A command answered MOVED / ASK / TRYAGAIN is sent again alone through
        call(), which follows the cluster's answer. A node that does not answer
        raises, or with `in_place` puts its error in place of each of its
        commands' replies (the fetch goes on with the shards that answer:
        shards_away.py).
        """
        if not commands:
            return []
        by_node: dict[str, tuple[Any, list[int]]] = {}
        waits = []  # WAIT (--wait-replicas) goes to every node written to, after its writes
        for index, command in enumerate(commands):
            if str(command[0]).upper() == "WAIT":
                waits.append(index)
                continue
            key = _key_of(command)
            node = self._node_for(key) if key is not None else self.cluster.get_random_node()
            by_node.setdefault(node.name, (node, []))[1].append(index)
        replies: list[Any] = [None] * len(commands)
        for node, indexes in by_node.values():
            sent = indexes + waits
            packed = [hiredis.pack_command(tuple(commands[i])) for i in sent]
            try:
                conn = self._connection(node)
                answers = self._send(conn, [b"".join(packed)], len(sent))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self.refresh()
                if not in_place:
                    raise
                answers = [exc] * len(sent)
            for index, answer in zip(sent, answers, strict=True):
                if index in waits and isinstance(replies[index], int):
                    answer = answer if isinstance(answer, ResponseError) else \
                        min(int(answer), replies[index])  # the fewest replicas of any node
                replies[index] = answer
        for index, reply in enumerate(replies):
            if isinstance(reply, AskError | MovedError | TryAgainError):
                try:
                    replies[index] = self.call(*commands[index])
                except ResponseError as exc:
                    replies[index] = exc
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    if not in_place:
                        raise
                    replies[index] = exc
        return replies

    # --- reading several slots -------------------------------------------

    def read_each(self, reads: Sequence[Sequence[Any]], block_ms: int | None) -> list[Any]:
        """XREADGROUPs of several queues (one slot each): all at once without blocking,
        pipelined per node; if none has an entry and `block_ms`, block on all of them."""
        replies = self.call_many(reads)
        if not block_ms or any(reply for reply in replies):
            return replies
        blocking = [(*read[:6], "BLOCK", block_ms, *read[6:]) for read in reads]
        return self.block_any(blocking, block_ms / 1000)


    def block_any(self, commands: Sequence[Sequence[Any]], timeout: float, *,
                  in_place: bool = False) -> list[Any]:
        """Send blocking reads (XREADGROUP ... BLOCK) of different slots at once; return
        every reply once the first has one (or all timed out).

        Each read goes on a connection of its own to its slot's owner; when one
        is answered, the others are released with CLIENT UNBLOCK. A read that
        was served meanwhile keeps its entries (they are delivered to us and
        returned with the rest), one released answers nil: nothing is lost or
        left pending without being returned. This keeps a worker's pickup of
        a new job on any of its queues immediate without cross-slot commands.

        With `in_place`, a node that does not answer (at the send, or its
        connection lost while blocked) gives its error in place of its reads'
        replies and the others block on; raised only when no read was sent.
        """
        waiting: list[tuple[int, Any, Any, int]] = []  # (index, connection, node, client id)
        replies: list[Any] = [None] * len(commands)
        gone = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        try:
            for index, command in enumerate(commands):
                node = self._node_for(_key_of(command))
                try:
                    conn, client_id = self._blocker(index, node)
                    conn.send_packed_command([hiredis.pack_command(tuple(command))],
                                             check_health=False)
                except gone as exc:
                    if not in_place:
                        raise
                    self._drop_blocker(index)
                    replies[index] = exc
                    continue
                waiting.append((index, conn, node, client_id))
            if not waiting:
                raise next(reply for reply in replies if isinstance(reply, gone))
            sockets = [conn._sock for _, conn, _, _ in waiting]
            ready, _, _ = select.select(sockets, [], [], timeout + 0.5)
            for _, conn, node, client_id in waiting:
                if conn._sock not in ready:
                    unblock: Any = ("CLIENT", "UNBLOCK", client_id)
                    answer = self._send(self._connection(node), [hiredis.pack_command(unblock)], 1)
                    _say_if_unblock_refused(answer[0])
            for index, conn, _, _ in waiting:
                try:
                    replies[index] = conn.read_response(disconnect_on_error=True)
                except ResponseError as exc:
                    replies[index] = exc
                except gone as exc:
                    if not in_place:
                        raise
                    self._drop_blocker(index)
                    replies[index] = exc
        except BaseException as exc:
            for _, conn, _, _ in waiting:
                conn.disconnect()
            self._local.blockers = {}
            if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
                self.refresh()  # a master killed: its replica takes the slots over
            raise
        if any(isinstance(reply, MovedError | AskError | redis.exceptions.ConnectionError |
                          redis.exceptions.TimeoutError) for reply in replies):
            self.refresh()  # the slot moved, or its owner went: read the slot map again
        return replies

    def _drop_blocker(self, index: int) -> None:
        """Forget the index-th blocking connection (its node went away)."""
        known = getattr(self._local, "blockers", {}).pop(index, None)
        if known is not None:
            known[0].disconnect()

    def _blocker(self, index: int, node: Any) -> tuple[Any, int]:
        """The connection (and its CLIENT ID) that blocks for the index-th queue."""
        local = self._local
        self._connection(node)  # resets the per-thread state after a fork
        blockers = getattr(local, "blockers", None)
        if blockers is None or local.blockers_forks != local.forks:
            blockers = local.blockers = {}
            local.blockers_forks = local.forks
        known = blockers.get(index)
        if known is not None and known[1] == node.name and known[0]._sock is not None:
            return known[0], known[2]
        if known is not None:
            known[0].disconnect()
        conn = node.redis_connection.connection_pool.make_connection()
        conn.connect()
        ask_id: Any = ("CLIENT", "ID")
        conn.send_packed_command([hiredis.pack_command(ask_id)], check_health=False)
        client_id = int(conn.read_response(disconnect_on_error=True))
        blockers[index] = (conn, node.name, client_id)
        return conn, client_id

    def call_stream(self, commands: Iterable[Sequence[Any]]) -> list[Any]:
        """call_many for an iterable (no overlap with building it: sent per node at the end)."""
        return self.call_many([tuple(command) for command in commands])


_unblock_refusal_said = False


def _say_if_unblock_refused(answer: Any) -> None:
    """Log once per process that CLIENT UNBLOCK is refused (an ACL without it).

    Nothing is lost then: the unreleased reads end at their BLOCK timeout and
    return what they got. But a worker idle on several shards then picks up a
    job only when its other reads time out, which looks like a slow cluster
    rather than a missing permission, so it is said plainly.
    """
    global _unblock_refusal_said
    if not isinstance(answer, ResponseError) or _unblock_refusal_said:
        return
    _unblock_refusal_said = True
    log.warning("Redis refused CLIENT UNBLOCK (%s): a worker reading queues on several "
                "shards then picks up a new job only after its block timeout; grant the "
                "user +client|unblock (README, the ACL rule for a cluster)", answer)
