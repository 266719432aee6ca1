"""The test tasks' lazily made client (tests/lazy_redis.py): one per process, from any thread.

Made without a lock, the first jobs of a `--concurrency` child each made a
client at once and the one dropped closed its pool under its job (a chaos run
on CI failed on the retry that followed). Here eight threads start together,
as those jobs do, many times over.
"""

from __future__ import annotations

import os
import threading

import redis
from lazy_redis import LazyRedis

THREADS = 8
ROUNDS = 100


def test_threads_starting_together_share_one_client_and_none_fails(redis_url: str) -> None:
    errors: list[BaseException] = []
    for _ in range(ROUNDS):
        lazy = LazyRedis(lambda: redis_url, decode_responses=True)
        barrier = threading.Barrier(THREADS)
        seen: list[redis.Redis] = []

        def job(index: int, lazy: LazyRedis = lazy, barrier: threading.Barrier = barrier,
                seen: list[redis.Redis] = seen) -> None:
            barrier.wait()
            try:
                client = lazy()
                seen.append(client)
                pipe = client.pipeline(transaction=True)
                pipe.rpush("t:lazy", index)
                pipe.hincrby("t:lazy:count", str(index), 1)
                pipe.execute()
                lazy().rpush("t:lazy", index)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=job, args=(index,)) for index in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(client) for client in seen}) == 1
    assert errors == []
    assert redis.Redis.from_url(redis_url).llen("t:lazy") == 2 * THREADS * ROUNDS


def test_a_forked_child_makes_its_own_client(redis_url: str) -> None:
    lazy = LazyRedis(lambda: redis_url)
    parent = lazy()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a client of its own, never the parent's socket
        try:
            child = lazy()
            ok = child is not parent and child.ping() and lazy() is child
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert lazy() is parent and parent.ping()
