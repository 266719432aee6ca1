"""The producer's operations on redis.asyncio: enqueue, enqueue many, read a job.

The async transport of the same commands the sync Broker sends: the script
call is built by `streams.enqueue_call` (one builder, two transports), so
both producers write the same messages and records and keep the same
idempotence by job id.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError

from supervisor.broker import keys, scripts
from supervisor.broker.direct import raise_error_reply
from supervisor.broker.streams import EnqueueFields, enqueue_call, enqueue_chunks, queue_keys


@functools.cache
def _enqueue_script() -> tuple[str, str]:
    source = scripts.source("enqueue")
    return source, hashlib.sha1(source.encode()).hexdigest()


class AsyncBroker:
    """Enqueueing and job reads over one redis.asyncio client."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client: Any = client
        self._source, self._sha = _enqueue_script()
        self._known_queues: set[str] = set()

    def _command(self, queue: str, requests: Iterable[EnqueueFields],
                 now_ms: int) -> tuple[Any, ...]:
        names, args = enqueue_call(queue_keys(queue), requests, now_ms)
        return ("EVALSHA", self._sha, len(names), *names, *args)

    async def _remember(self, queues: Iterable[str]) -> None:
        new = set(queues) - self._known_queues
        if new:
            await self.client.sadd(keys.QUEUES, *sorted(new))
            self._known_queues |= new

    async def enqueue(self, request: EnqueueFields, now_ms: int) -> bool:
        """Add one job; False when its id is already known (duplicate ignored)."""
        await self._remember((request[0],))
        command = self._command(request[0], (request,), now_ms)
        try:
            reply = await self.client.execute_command(*command)
        except NoScriptError:  # a restarted or flushed server forgot the script
            await self.client.execute_command("SCRIPT", "LOAD", self._source)
            reply = await self.client.execute_command(*command)
        return bool(reply[0])

    async def enqueue_many(self, requests: Sequence[EnqueueFields], now_ms: int,
                           chunk: int = 500) -> list[bool]:
        """Add many jobs (True added, False duplicate), in order, in one pipelined round
        trip of one script call per chunk."""
        await self._remember(request[0] for request in requests)
        chunks = list(enqueue_chunks(requests, chunk))
        commands = [self._command(queue, batch, now_ms) for queue, batch, _ in chunks]
        replies = await self._pipelined(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await self.client.execute_command("SCRIPT", "LOAD", self._source)
            again = await self._pipelined([commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        raise_error_reply(replies)
        added = [False] * len(requests)
        for (_, _, positions), flags in zip(chunks, replies, strict=True):
            for index, flag in zip(positions, flags, strict=True):
                added[index] = flag == 1
        return added

    async def _pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

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
