"""--wait-replicas on a real master and replica: an enqueue waits for its replica (tried
again, never doubled, while the replica lags), and a replica that never comes gets a
sentence, not a hang; the sync and the async producer alike."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import wait_until
from redis_server import RedisServer

from supervisor.api import aproducer, producer
from supervisor.broker import keys
from supervisor.config import load_config
from supervisor.errors import WriteRefused
from tasks.examples import add


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary", None, "--repl-diskless-sync-delay", "0")
    primary.start()
    replica = RedisServer(tmp_path / "replica", None, "--replicaof", "127.0.0.1",
                          str(primary.port))
    replica.start()
    client = redis.Redis.from_url(primary.url, decode_responses=True)
    wait_until(lambda: client.info("replication").get("slave0", {}).get("state") == "online",
               timeout=30, what="the replica in sync")
    yield primary, replica
    for server in (replica, primary):
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()


def submit(url: str, flavour: str, job_id: str) -> str:
    config = load_config({"redis_url": url, "wait_replicas": 1, "wait_timeout": 0.2}, env={})
    if flavour == "sync":
        return producer.Producer(config).submit(add, (1, 2), {}, job_id=job_id).id

    async def run() -> str:
        made = aproducer.AsyncProducer(config)
        try:
            return (await made.submit(add, (1, 2), {}, job_id=job_id)).id
        finally:
            await made.client.aclose()
    return asyncio.run(run())


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_an_enqueue_waits_for_a_lagging_replica_and_is_written_once(
        servers: tuple[RedisServer, RedisServer], flavour: str) -> None:
    primary, replica = servers
    assert submit(primary.url, flavour, "first") == "first"
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)  # it takes nothing while stopped
    threading.Timer(1.5, replica.process.send_signal, (signal.SIGCONT,)).start()
    started = time.monotonic()
    assert submit(primary.url, flavour, "second") == "second"
    assert time.monotonic() - started >= 1.2  # it waited for the replica, WAIT by WAIT
    client = redis.Redis.from_url(primary.url, decode_responses=True)
    assert client.xlen(keys.stream("default")) == 2  # each try was the same idempotent write
    on_replica = redis.Redis.from_url(replica.url, decode_responses=True)
    wait_until(lambda: on_replica.exists(keys.job_prefix("default") + "second"), timeout=10,
               what="the record on the replica")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_replica_that_never_takes_the_write_gets_a_sentence(
        servers: tuple[RedisServer, RedisServer], flavour: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    primary, replica = servers
    monkeypatch.setattr(producer, "ENQUEUE_RETRY_SECONDS", 1.0)
    monkeypatch.setattr(aproducer, "ENQUEUE_RETRY_SECONDS", 1.0)
    replica.kill()  # (a TERM waits out the shutdown of its master link: 10 s)
    with pytest.raises(WriteRefused) as refused:
        submit(primary.url, flavour, "lonely")
    text = str(refused.value)
    assert "0 of 1 replicas took the write" in text and "will run" in text
    assert "--wait-replicas" in text
    client = redis.Redis.from_url(primary.url, decode_responses=True)
    assert client.xlen(keys.stream("default")) == 1  # on the master once, as said


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_workflow_waits_for_a_lagging_replica_and_is_written_once(
        servers: tuple[RedisServer, RedisServer], flavour: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Its commits WAIT behind them (and so behind the staging, answered before them:
    # earlier in the replication stream), from delay() and adelay() alike.
    from supervisor import group

    primary, replica = servers
    config = load_config({"redis_url": primary.url, "wait_replicas": 1, "wait_timeout": 0.2},
                         env={})
    client = redis.Redis.from_url(primary.url, decode_responses=True)
    client.config_resetstat()
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    threading.Timer(1.5, replica.process.send_signal, (signal.SIGCONT,)).start()
    if flavour == "sync":
        monkeypatch.setattr(producer, "_producer", producer.Producer(config))
        flow = group(add.s(i, i) for i in range(1200)).delay()
    else:
        async def run() -> Any:
            made = aproducer.AsyncProducer(config)
            monkeypatch.setattr(aproducer, "current_async_producer", lambda: made)
            try:
                return await group(add.s(i, i) for i in range(1200)).adelay()
            finally:
                await made.client.aclose()
        flow = asyncio.run(run())
    # It waited for the replica: WAITs answered short (the replica stopped), then one in
    # full; the whole send tried again after each.
    assert client.info("commandstats")["cmdstat_wait"]["calls"] >= 2
    assert client.xlen(keys.stream("default")) == 1200  # each try the same idempotent write
    on_replica = redis.Redis.from_url(replica.url, decode_responses=True)
    wait_until(lambda: on_replica.xlen(keys.stream("default")) == 1200, timeout=10,
               what="the members on the replica")
    assert on_replica.exists(keys.workflow("default", flow.id))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_plain_url_at_the_replica_is_refused_by_either_producer_naming_the_fix(
        servers: tuple[RedisServer, RedisServer], flavour: str) -> None:
    # Before the async producer checked the server, its enqueue went to the replica and
    # met READONLY, which it took for a failover and retried for its whole window.
    primary, replica = servers
    config = load_config({"redis_url": replica.url}, env={})
    started = time.monotonic()
    with pytest.raises(WriteRefused, match="is a read-only replica: point the URL at the "
                                           "primary"):
        if flavour == "sync":
            producer.Producer(config).submit(add, (1, 2), {})
        else:
            async def run() -> None:
                made = aproducer.AsyncProducer(config)
                try:
                    await made.submit(add, (1, 2), {})
                finally:
                    await made.client.aclose()
            asyncio.run(run())
    assert time.monotonic() - started < producer.ENQUEUE_RETRY_SECONDS  # at once
    assert not redis.Redis.from_url(primary.url).exists(keys.stream("default"))
