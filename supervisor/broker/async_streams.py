"""The producer's operations on redis.asyncio: enqueue, enqueue many, workflows, read a job.

The async transport of the same commands the sync Broker sends: the script
call is built by `enqueue.enqueue_call` (one builder, two transports), so
both producers write the same messages and records and keep the same
idempotence by job id; a workflow's calls are built by api/flows.py and sent
here as broker/workflow.py's apply_many sends them (its NOSCRIPT and WAIT rules
shared).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from supervisor.broker import keys, replicas, scripts, workflow
from supervisor.broker.direct import raise_error_reply
from supervisor.broker.enqueue import (
    EnqueueFields,
    enqueue_call,
    enqueue_chunks,
    holder_of,
    queue_keys,
)
from supervisor.broker.queue_registry import UNREACHABLE, QueueRegistry
from supervisor.core.priority import level_of
from supervisor.errors import ConfigError


def _is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


@functools.cache
def _script(name: str) -> tuple[str, str]:
    """(source, sha) of a Lua script, for EVALSHA on the async client."""
    source = scripts.source(name)
    return source, hashlib.sha1(source.encode()).hexdigest()


class AsyncBroker:
    """Enqueueing and job reads over one redis.asyncio client (single server, Sentinel
    master or RedisCluster: a cluster routes each queue's script call to its slot)."""

    def __init__(self, client: Any, *, wait_replicas: int = 0,
                 wait_timeout: float = 1.0) -> None:
        self.client: Any = client
        self._source, self._sha = _script("enqueue")
        self._registry = QueueRegistry(sharded=_is_cluster(client))  # names in sv:queues
        # --wait-replicas: WAIT right behind each write, on its connection (a
        # pipeline of one connection), as the sync Broker does (replicas.py).
        self.wait: tuple[str, int, int] | None = (
            ("WAIT", wait_replicas, max(1, int(wait_timeout * 1000))) if wait_replicas else None)
        if self.wait is not None and _is_cluster(client):
            raise ConfigError(
                "--wait-replicas is not supported by the async producer on a Redis Cluster "
                "yet (WAIT must follow each write on its shard's connection); use the sync "
                "API there, e.g. await asyncio.to_thread(task.delay, ...), or drop "
                "--wait-replicas for this producer")

    def _command(self, queue: str, requests: Iterable[EnqueueFields],
                 now_ms: int, level: int = 0) -> tuple[Any, ...]:
        names, args = enqueue_call(queue_keys(queue, level), requests, now_ms)
        return ("EVALSHA", self._sha, len(names), *names, *args)

    async def remember_queues(self, queues: Iterable[str]) -> None:
        """Add new queue names to the registry of queues (once per name and broker)."""
        new = self._registry.to_add(queues)
        if not new:
            return
        try:
            await self.client.sadd(keys.QUEUES, *new)
        except UNREACHABLE as exc:
            self._registry.failed(new, exc)  # raised but on a cluster (queue_registry.py)
            return
        self._registry.added(new)

    async def enqueue(self, request: EnqueueFields, now_ms: int) -> bool | str:
        """Add one job; False when its id is already known (duplicate ignored), or the id of
        the equal job holding its unique lock (nothing added)."""
        await self.remember_queues((request[0],))
        command = self._command(request[0], (request,), now_ms, level_of(request[2]))
        if self.wait is not None:
            flag = (await self.enqueue_commands([command]))[0][0]
            return holder_of(flag) or bool(flag)
        try:
            reply = await self.client.execute_command(*command)
        except NoScriptError:  # a restarted or flushed server forgot the script
            await self._load_script()
            reply = await self.client.execute_command(*command)
        return holder_of(reply[0]) or bool(reply[0])

    async def _load_script(self, source: str | None = None) -> None:
        # On a cluster redis-py's script_load goes to every master (each runs its slots').
        await self.client.script_load(source or self._source)

    async def enqueue_many(self, requests: Sequence[EnqueueFields], now_ms: int,
                           chunk: int = 500) -> list[bool | str]:
        """Add many jobs (True added, False duplicate, or the id of the equal job holding a
        unique lock), in order, in one pipelined round
        trip of one script call per chunk."""
        await self.remember_queues(request[0] for request in requests)
        chunks = list(enqueue_chunks(requests, chunk))
        replies = await self.enqueue_commands(
            [self._command(queue, batch, now_ms, level) for (queue, level), batch, _ in chunks])
        added: list[bool | str] = [False] * len(requests)
        for (_, _, positions), flags in zip(chunks, replies, strict=True):
            for index, flag in zip(positions, flags, strict=True):
                added[index] = flag == 1 or holder_of(flag) or False
        return added

    async def enqueue_commands(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies of enqueue script calls, pipelined (a script the server forgot is
        loaded and its calls sent again); with --wait-replicas, WAIT after them."""
        replies = await self._pipelined(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await self._load_script()
            again = await self._pipelined([commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        raise_error_reply(replies)
        return replies

    async def apply_workflow(self, calls: Iterable[tuple[list[str], str]], *,
                             wait: bool = False) -> None:
        """Run workflow.lua for each (KEYS, operations), pipelined in one round trip (on
        a cluster, one per node: each call goes to its first key's slot); `wait`: with
        --wait-replicas, WAIT behind them. As the sync Broker's apply_workflow: the calls
        answered NOSCRIPT are sent again once the script is loaded."""
        source, sha = _script("workflow")
        until = self.wait if wait else None
        sent = workflow.script_calls(sha, calls, until)
        if not sent:
            return
        replies = await self._send(sent)
        missing = workflow.forgotten(replies)
        if missing:
            await self._load_script(source)
            again = await self._send(workflow.resend_of(sent, missing, until))
            workflow.merge_resent(replies, missing, again, until)
        workflow.finish(replies, until)

    async def _send(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The replies of `commands` in one pipeline, error replies in their place."""
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def _pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        replies = await self._send([*commands, *([self.wait] if self.wait else [])])
        if self.wait is not None:
            acked = replies.pop()
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                replicas.check(acked, self.wait)  # NotReplicated: the producer retries
        return replies

    async def read_job(self, job_id: str, queue: str | None = None,
                       ) -> tuple[str, str, str | None] | None:
        """(queue, record JSON, holder or None) of `job_id`, as inspect.read_job."""
        queues: list[str] = [queue] if queue else sorted(await self.client.smembers(keys.QUEUES))
        pipe = self.client.pipeline(transaction=False)
        for name in queues:
            pipe.get(keys.job(name, job_id))
            pipe.hget(keys.running(name), job_id)
        replies = await pipe.execute()
        for index, name in enumerate(queues):
            raw, holder = replies[2 * index], replies[2 * index + 1]
            if raw:
                return name, raw, holder
        return None
