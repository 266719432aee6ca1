"""Enqueueing from Python: `configure()`, `Task.delay()`, `enqueue_many()`.

Nothing connects at import time; the first enqueue opens the connection.
Enqueue is idempotent by job id (the id is chosen here, before the first
try), so a transient Redis error is retried without risk of a second copy.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import redis
from redis.exceptions import ResponseError

from supervisor.api import middleware, session
from supervisor.api.result import AsyncResult
from supervisor.broker.connection import TRANSIENT_ERRORS, connect, describe
from supervisor.broker.enqueue import EnqueueFields, EnqueueRequest
from supervisor.broker.error_codes import during_failover
from supervisor.broker.reconnect import OutageLog, call_with_reconnect
from supervisor.broker.refusals import write_refusal, wrong_server
from supervisor.broker.replicas import NotReplicated
from supervisor.broker.streams import Broker
from supervisor.config import Config
from supervisor.core import record
from supervisor.core.job import Job, check_job_id, decode, new_job_id
from supervisor.core.limits import unique_digest
from supervisor.core.middleware import Hooks
from supervisor.core.priority import check_priority, effective_priority
from supervisor.errors import BrokerUnavailable, WriteRefused

# How long a producer keeps retrying a Redis that is away before it raises.
ENQUEUE_RETRY_SECONDS = 10.0


class Submittable(Protocol):
    """What the producer needs of a task (the registry's Task has it)."""

    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def result_ttl(self) -> int | None: ...

    @property
    def expires(self) -> float | None: ...

    @property
    def unique_ttl(self) -> int | None: ...

    @property
    def unique_key(self) -> Callable[..., Any] | None: ...


class Call(Protocol):
    """A task with its arguments (the registry's Signature)."""

    @property
    def task(self) -> Submittable: ...

    @property
    def args(self) -> tuple[Any, ...]: ...

    @property
    def kwargs(self) -> dict[str, Any]: ...


# One job of enqueue_many, kept as plain values until sent: (id, task, queue, created,
# message, result TTL, headers or None, unique digest or '', unique lock TTL, due ms or 0).
ManyJob = tuple[str, str, str, float, str, int, dict[str, str] | None, str, int, int]


class Requests:
    """What the sync and the async producer share: the jobs and records they send.

    One builder, two transports (broker/producing.py and broker/async_streams.py),
    so both write the same messages, records and idempotent job ids.
    """

    config: Config
    host: str
    hooks: Hooks

    def _request(self, task: str, queue: str, ttl: int | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], due_ms: int, job_id: str | None,
                 headers: dict[str, str] | None = None, expires: float = 0.0,
                 unique: tuple[str, int] | None = None,
                 priority: int = 0) -> EnqueueRequest:
        # On the path of every delay(): positional NamedTuple, no keyword checks.
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        job = Job(id=job_id, task=task, queue=queue, args=args, kwargs=kwargs, host=self.host,
                  expires=expires, priority=priority)
        if headers or self.hooks.before_enqueue:
            job.headers = middleware.enqueue_headers(self.hooks, job_id, task, queue, args,
                                                     kwargs, headers, due_ms / 1000)
        ttl = ttl or self.config.result_ttl
        if unique is None:
            return EnqueueRequest(queue, job_id, job.encode(self.config.max_payload_bytes),
                                  record.of_new_job(job, due_ms), due_ms, ttl)
        job.unique = unique[0]
        return EnqueueRequest(queue, job_id, job.encode(self.config.max_payload_bytes),
                              record.of_new_job(job, due_ms), due_ms, ttl, False, unique[0],
                              unique[1] or ttl)

    def _unique(self, task: Submittable, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[str, int] | None:
        """(digest, lock TTL or 0 for the result TTL) of a unique task's job, else None."""
        lock_ttl = task.unique_ttl
        if lock_ttl is None:
            return None
        return unique_digest(task.name, args, kwargs, task.unique_key), lock_ttl

    def _submitted(self, task: Submittable, args: tuple[Any, ...], kwargs: dict[str, Any],
                   countdown: float | None, eta: datetime | None, queue: str | None,
                   job_id: str | None, headers: dict[str, str] | None = None,
                   expires: float | datetime | None = None,
                   priority: int | None = None) -> EnqueueRequest:
        due_ms = due_at_ms(countdown, eta) if countdown is not None or eta is not None else 0
        if expires is None:
            expires = task.expires
        return self._request(task.name, queue or task.queue, task.result_ttl, args, kwargs,
                             due_ms, job_id, headers, _expires_at(expires, due_ms),
                             self._unique(task, args, kwargs),
                             effective_priority(priority, task))

    def _many(self, signatures: Iterable[Call]) -> list[ManyJob]:
        # Every message is encoded (and so checked: JSON, size) before anything
        # is sent, so a bad one enqueues nothing. What is kept per job is a
        # tuple of strings and numbers, which the garbage collector stops
        # tracking at once: 20,000 Job objects kept alive would make every
        # collection meanwhile walk them all.
        host = self.host
        limit = self.config.max_payload_bytes
        default_ttl = self.config.result_ttl
        hooked = bool(self.hooks.before_enqueue)
        jobs: list[ManyJob] = []
        for sig in signatures:
            task = sig.task
            queue = getattr(sig, "queue", None) or task.queue  # .set(queue=...), or the task's
            job_id = new_job_id()
            created = time.time()
            countdown = getattr(sig, "countdown", None)  # .set(countdown=...)
            due = due_at_ms(countdown, None) if countdown else 0
            job = Job(id=job_id, task=task.name, queue=queue, args=sig.args,
                      kwargs=sig.kwargs, created=created, host=host,
                      expires=_expires_at(task.expires, due),
                      priority=effective_priority(getattr(sig, "priority", None), task))
            if hooked:
                job.headers = middleware.enqueue_headers(self.hooks, job_id, task.name,
                                                         queue, sig.args, sig.kwargs, None)
            unique = self._unique(task, sig.args, sig.kwargs)
            ttl = task.result_ttl or default_ttl
            if unique is not None:
                job.unique = unique[0]
            jobs.append((job_id, task.name, queue, created, job.encode(limit), ttl,
                         job.headers or None, *(unique or ("", 0)), due))
        return jobs

    def _many_requests(self, jobs: list[ManyJob]) -> Iterator[EnqueueFields]:
        """The requests of `jobs` (made again on each try: same ids)."""
        host = self.host
        for job_id, name, queue, created, message, ttl, headers, unique, lock_ttl, due in jobs:
            written = record.enqueued(job_id, name, queue, created, host, due, headers, unique)
            if unique:
                yield (queue, job_id, message, written, due, ttl, False, unique,
                       lock_ttl or ttl)
            else:
                yield queue, job_id, message, written, due, ttl, False


def refusal(exc: ResponseError, url: str, lost: str) -> WriteRefused | None:
    """Out of memory, a failed snapshot, too few replicas: one sentence (not redis-py's
    text, which names the script's hash); None for any other error."""
    refused = write_refusal(exc, url, lost)
    return None if refused is None else WriteRefused(str(refused))


def unavailable(exc: BaseException, url: str) -> BrokerUnavailable:
    if isinstance(exc, NotReplicated):  # Redis answered and took the write
        return WriteRefused(
            f"Redis at {describe(url)} took the write but {exc}, for "
            f"{ENQUEUE_RETRY_SECONDS:g} s of tries: what it wrote is on the master and will "
            "run, yet a failover now could lose it; check the replicas (INFO "
            "replication) or lower --wait-replicas / SUPERVISOR_WAIT_REPLICAS")
    return BrokerUnavailable(
        f"cannot reach Redis at {describe(url)}: {exc}; "
        "is the server running and the URL (SUPERVISOR_REDIS_URL / --redis-url) right?")


class Producer(Requests):
    """Turns task calls into jobs in Redis, for one Redis URL."""

    def __init__(self, config: Config, *, client: redis.Redis | None = None) -> None:
        self.config = config
        self.client = client or connect(config.redis_url)
        self.broker = Broker.for_config(self.client, config)
        self.host = socket.gethostname()
        self._outage = OutageLog("producer")
        self.hooks = middleware.hooks_for(config)
        self._checked = client is not None and not isinstance(client, redis.Redis)

    def _check_server(self) -> None:
        """Once: a plain redis:// URL must not name a sentinel, a replica or a cluster node."""
        refusal = wrong_server(self.client, self.config.redis_url)
        if refusal is not None:
            raise WriteRefused(str(refusal))
        self._checked = True

    def _retrying(self, call: Any, lost: str = "the job was not enqueued") -> Any:
        if not self._checked:
            self._retrying_call(self._check_server, lost)
        return self._retrying_call(call, lost)

    def _retrying_call(self, call: Any, lost: str) -> Any:
        try:
            # A failover (READONLY, NOREPLICAS, MASTERDOWN, CLUSTERDOWN) is waited out
            # like an unreachable server, within the same retry window.
            return call_with_reconnect(call, TRANSIENT_ERRORS, self._outage,
                                       give_up_after=ENQUEUE_RETRY_SECONDS,
                                       also=during_failover)
        except TRANSIENT_ERRORS as exc:
            raise unavailable(exc, self.config.redis_url) from None
        except ResponseError as exc:
            refused = refusal(exc, self.config.redis_url, lost)
            if refused is None:
                raise
            raise refused from None

    def _enqueue(self, request: EnqueueRequest) -> AsyncResult[Any]:
        broker = self.broker
        # `now` is read on each try: a retry after an outage compares due times to then.
        added = self._retrying(lambda: broker.enqueue(request, int(time.time() * 1000)))
        # A unique job whose equal is queued, scheduled, retrying or running: its handle.
        job_id = added if isinstance(added, str) else request.job_id
        return AsyncResult(job_id, queue=request.queue, client=self.client)

    def submit(self, task: Submittable, args: tuple[Any, ...], kwargs: dict[str, Any], *,
               countdown: float | None = None, eta: datetime | None = None,
               queue: str | None = None, job_id: str | None = None,
               headers: dict[str, str] | None = None,
               expires: float | datetime | None = None,
               priority: int | None = None) -> AsyncResult[Any]:
        return self._enqueue(self._submitted(task, args, kwargs, countdown, eta, queue,
                                             job_id, headers, expires, priority))

    def submit_named(self, task: str, queue: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any], *, countdown: float | None = None,
                     job_id: str | None = None,
                     headers: dict[str, str] | None = None,
                     expires: float | None = None,
                     priority: int = 0) -> AsyncResult[Any]:
        """Enqueue by task name (the CLI's way: the task need not be importable here)."""
        due_ms = due_at_ms(countdown, None) if countdown is not None else 0
        return self._enqueue(self._request(task, queue, None, args, kwargs, due_ms, job_id,
                                           headers, _expires_at(expires, due_ms),
                                           priority=check_priority(priority)))

    def requeue(self, message: str) -> str:
        """Enqueue a dead job's original message again, as a fresh first attempt, same id.

        Forced past the dedup window: the id is known (its failed record), and
        running it again is exactly what was asked.
        """
        job = replace(decode(message), attempt=1, crashes=0, history=(), suspect=False)
        request = EnqueueRequest(queue=job.queue, job_id=job.id, message=job.encode(),
                                 record=record.of_new_job(job, 0), ttl=self.config.result_ttl,
                                 force=True)
        self._enqueue(request)
        return job.id

    def submit_many(self, signatures: Iterable[Call]) -> list[AsyncResult[Any]]:
        # Records are made while Redis runs the chunks sent before (enqueue_many
        # streams them).
        jobs = self._many(signatures)
        broker = self.broker
        added = self._retrying(lambda: broker.enqueue_many(self._many_requests(jobs),
                                                           int(time.time() * 1000)),
                               "the jobs were not enqueued (those of earlier chunks may be)")
        client = self.client
        return [AsyncResult(flag if isinstance(flag, str) else job[0], queue=job[2],
                            client=client) for job, flag in zip(jobs, added, strict=True)]


def _expires_at(expires: float | datetime | None, due_ms: int) -> float:
    """When a job expires (epoch s; 0 never): `expires` seconds counted from when the job is
    due (now, or its countdown/eta: a delayed job is not expired by its own delay), or an
    aware datetime."""
    if expires is None:
        return 0.0
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            raise ValueError("expires must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return expires.timestamp()
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires <= 0:
        raise ValueError(f"expires must be positive seconds or an aware datetime, "
                         f"got {expires!r}")
    start = due_ms / 1000 if due_ms else time.time()
    return start + float(expires)


def due_at_ms(countdown: float | None, eta: datetime | None) -> int:
    """When a delayed job is due (epoch ms), or 0 for now."""
    if countdown is not None and eta is not None:
        raise ValueError("give either countdown= or eta=, not both")
    if eta is not None:
        if eta.tzinfo is None:
            raise ValueError("eta must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return int(eta.timestamp() * 1000)
    if countdown is not None and countdown > 0:
        return int((time.time() + countdown) * 1000)
    return 0


_lock = threading.Lock()
_producer: Producer | None = None
_overrides = session.overrides  # the same dict: clearing either clears both


def configure(**options: Any) -> None:
    """Set producer options in code (e.g. `configure(redis_url=...)`); wins over the environment.

    `middleware=[...]` registers hooks in code (instances, or `module:Class`
    names): they run after those named in the configuration, in this order,
    in producers and workers alike (core/middleware.py, README "Hooks").
    """
    global _producer
    if "middleware" in options:
        middleware.use(options.pop("middleware"))
    session.override(options)
    _producer = None


def current_producer() -> Producer:
    """The process's producer, created on first use (and again after a fork)."""
    producer = _producer
    if producer is not None:  # the path of every delay(): no lock, no getpid()
        return producer
    return _create_producer()


def _create_producer() -> Producer:
    global _producer
    with _lock:
        if _producer is None:
            config = session.settings()
            _producer = Producer(config, client=session.client(config))
        return _producer


def _forget_after_fork() -> None:
    # A producer inherited across fork shares the parent's sockets: the child
    # makes its own on first use (session drops the client too). A fresh lock
    # too: another thread may have held it at the fork.
    global _producer, _lock
    _producer = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def enqueue_many(signatures: Iterable[Call]) -> list[AsyncResult[Any]]:
    """Enqueue many jobs in pipelined round trips: `enqueue_many(add.s(i, i) for i in ...)`."""
    return current_producer().submit_many(signatures)
