"""What every system's benchmark tasks do, written once.

Imported by the task modules of every system, in that system's own
virtualenv: it needs nothing but redis-py. The Redis URL comes from
BENCH_REDIS_URL, set by the harness for workers and producers alike.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis

COUNTER = "bench:count"  # INCR by every counted job: completion and progress
LATENCY = "bench:lat"  # list of pickup delays (seconds) written by `latency`
SEEN = "bench:seen"  # hash job index -> times run, written by `mark`
RAN = "bench:ran"  # list of "pid start end" written by `sleep`: who ran what, when

KINDS = ("incr", "noop", "latency", "sleep", "mark", "io")
IO_WAIT = 0.010  # seconds an `io` job waits (a stand-in for a network call) before its INCR

_client: redis.Redis | None = None
_client_pid = 0
_lock = threading.Lock()  # threaded workers (Dramatiq) must share one client, not race


def redis_url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def client() -> redis.Redis:
    """This process's client (created lazily, again after a fork)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        with _lock:
            if _client is None or _client_pid != os.getpid():
                _client = redis.Redis.from_url(redis_url())
                _client_pid = os.getpid()
    return _client


def variant() -> str:
    return os.environ.get("BENCH_VARIANT", "")


def io_slots() -> int:
    """Jobs in flight per worker process in the IO-bound table (set by the harness)."""
    return int(os.environ.get("BENCH_IO_SLOTS", "16"))


def incr() -> None:
    client().incr(COUNTER)


def noop() -> None:
    return None


def latency(sent: float) -> None:
    delay = time.time() - sent
    pipe = client().pipeline(transaction=False)
    pipe.rpush(LATENCY, repr(delay))
    pipe.incr(COUNTER)
    pipe.execute()


def sleep(seconds: float) -> None:
    started = time.time()
    time.sleep(seconds)
    pipe = client().pipeline(transaction=False)
    pipe.rpush(RAN, f"{os.getpid()} {started!r} {time.time()!r}")
    pipe.incr(COUNTER)
    pipe.execute()


def mark(index: int) -> None:
    pipe = client().pipeline(transaction=False)
    pipe.hincrby(SEEN, str(index), 1)
    pipe.incr(COUNTER)
    pipe.execute()


def io() -> None:
    """The IO-bound job: wait IO_WAIT (sleeping, as a thread blocked on a socket would),
    then one INCR. Threads share this process's client (its pool is thread-safe)."""
    time.sleep(IO_WAIT)
    client().incr(COUNTER)


# Async twins for the asyncio systems (arq, taskiq, saq, ours' async def tasks), on
# redis.asyncio: one client per process and event loop (a client's connections belong
# to the loop that opened them).
_aclient: object | None = None
_aclient_owner: tuple[int, object] | None = None


def aclient():  # type: ignore[no-untyped-def]
    global _aclient, _aclient_owner
    owner = (os.getpid(), asyncio.get_running_loop())
    if _aclient is None or _aclient_owner != owner:
        import redis.asyncio as aredis

        _aclient, _aclient_owner = aredis.Redis.from_url(redis_url()), owner
    return _aclient


async def aincr() -> None:
    await aclient().incr(COUNTER)


async def alatency(sent: float) -> None:
    delay = time.time() - sent
    pipe = aclient().pipeline(transaction=False)
    pipe.rpush(LATENCY, repr(delay))
    pipe.incr(COUNTER)
    await pipe.execute()


async def asleep(seconds: float) -> None:
    started = time.time()
    await asyncio.sleep(seconds)
    pipe = aclient().pipeline(transaction=False)
    pipe.rpush(RAN, f"{os.getpid()} {started!r} {time.time()!r}")
    pipe.incr(COUNTER)
    await pipe.execute()


async def amark(index: int) -> None:
    pipe = aclient().pipeline(transaction=False)
    pipe.hincrby(SEEN, str(index), 1)
    pipe.incr(COUNTER)
    await pipe.execute()


async def aio() -> None:
    """`io` for an event loop: await IO_WAIT, then one INCR."""
    await asyncio.sleep(IO_WAIT)
    await aclient().incr(COUNTER)
