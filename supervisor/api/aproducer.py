"""Enqueueing from asyncio code: `await task.adelay()`, `aapply_async()`, `aenqueue_many()`.

For FastAPI, aiohttp and the like, where a blocking call would stall the
event loop. Same semantics and errors as the sync producer (api/producer.py,
whose builder it shares: same messages, records and idempotent job ids),
on redis.asyncio. A redis.asyncio client belongs to the loop it was made
on, so there is one async producer per event loop, made on first use.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import redis.asyncio
from redis.exceptions import ResponseError

from supervisor.api import middleware, session
from supervisor.api.producer import (
    ENQUEUE_RETRY_SECONDS,
    Call,
    Requests,
    Submittable,
    refusal,
    unavailable,
)
from supervisor.api.result import AsyncResult
from supervisor.broker import keys
from supervisor.broker.async_streams import AsyncBroker
from supervisor.broker.connection import TRANSIENT_ERRORS, connect_async
from supervisor.broker.error_codes import during_failover
from supervisor.broker.refusals import awrong_server
from supervisor.config import Config
from supervisor.errors import WriteRefused

T = TypeVar("T")


class AsyncProducer(Requests):
    """Turns task calls into jobs in Redis from a coroutine, for one Redis URL."""

    def __init__(self, config: Config, *, client: redis.asyncio.Redis | None = None) -> None:
        self.config = config
        self.client = client or connect_async(config.redis_url)
        keys.use_namespace(config.namespace)  # as Broker.for_config does for the sync one
        self.broker = AsyncBroker(self.client, wait_replicas=config.wait_replicas,
                                  wait_timeout=config.wait_timeout)
        self.host = socket.gethostname()
        self.hooks = middleware.hooks_for(config)
        self._checked = False

    async def _check_server(self) -> None:
        """Once: a plain redis:// URL must not name a sentinel, a replica or a cluster
        node (as the sync producer checks: such a server takes writes it loses later)."""
        wrong = await awrong_server(self.client, self.config.redis_url)
        if wrong is not None:
            raise WriteRefused(str(wrong))
        self._checked = True

    async def _retrying(self, call: Callable[[], Awaitable[T]],
                        lost: str = "the job was not enqueued") -> T:
        """Run `call`, retrying a Redis away for a moment (as the sync producer does:
        exponential backoff with jitter, for up to ENQUEUE_RETRY_SECONDS); safe, since
        the job ids are chosen before the first try."""
        if not self._checked:
            await self._retrying_call(self._check_server, lost)
        return await self._retrying_call(call, lost)

    async def _retrying_call(self, call: Callable[[], Awaitable[T]], lost: str) -> T:
        give_up = time.monotonic() + ENQUEUE_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() + delay > give_up:
                    raise unavailable(exc, self.config.redis_url) from None
            except ResponseError as exc:
                # A failover (READONLY, NOREPLICAS, MASTERDOWN, CLUSTERDOWN, TRYAGAIN,
                # LOADING) is waited out in the same window; the rest are raised at once.
                if not during_failover(exc) or time.monotonic() + delay > give_up:
                    refused = refusal(exc, self.config.redis_url, lost)
                    if refused is None:
                        raise
                    raise refused from None
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)

    async def submit(self, task: Submittable, args: tuple[Any, ...], kwargs: dict[str, Any],
                     *, countdown: float | None = None, eta: datetime | None = None,
                     queue: str | None = None, job_id: str | None = None,
                     headers: dict[str, str] | None = None,
                     expires: float | datetime | None = None,
                     priority: int | None = None) -> AsyncResult[Any]:
        request = self._submitted(task, args, kwargs, countdown, eta, queue, job_id, headers,
                                  expires, priority)
        broker = self.broker
        added = await self._retrying(lambda: broker.enqueue(request, int(time.time() * 1000)))
        # A unique job whose equal is queued, scheduled, retrying or running: its handle.
        job_id = added if isinstance(added, str) else request.job_id
        return AsyncResult(job_id, queue=request.queue, aclient=self.client)

    async def submit_many(self, signatures: Iterable[Call]) -> list[AsyncResult[Any]]:
        jobs = self._many(signatures)
        broker = self.broker
        added = await self._retrying(
            lambda: broker.enqueue_many(list(self._many_requests(jobs)),
                                        int(time.time() * 1000)),
            "the jobs were not enqueued (those of earlier chunks may be)")
        return [AsyncResult(flag if isinstance(flag, str) else job[0], queue=job[2],
                            aclient=self.client) for job, flag in zip(jobs, added, strict=True)]


# One per event loop (a client is bound to its loop), forgotten with the loop.
_producers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, AsyncProducer]] = \
    weakref.WeakKeyDictionary()


def current_async_producer() -> AsyncProducer:
    """The running loop's async producer, made on first use (again if configure() changed
    the URL)."""
    loop = asyncio.get_running_loop()
    config = session.settings()
    known = _producers.get(loop)
    if known is not None and known[0] == config.redis_url:
        return known[1]
    producer = AsyncProducer(config)
    _producers[loop] = (config.redis_url, producer)
    return producer


async def aenqueue_many(signatures: Iterable[Call]) -> list[AsyncResult[Any]]:
    """Enqueue many jobs in one pipelined round trip: `await aenqueue_many(add.s(i, i) ...)`."""
    return await current_async_producer().submit_many(signatures)
