"""Both producers wait out the replies of a failover within their retry window, and raise
the rest at once: the errors as redis-py parses them from the server's replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis._parsers import _RESP2Parser

from supervisor.api import aproducer, producer
from supervisor.config import load_config
from supervisor.errors import WriteRefused

FAILOVER_REPLIES = [
    "READONLY You can't write against a read only replica.",
    "NOREPLICAS Not enough good replicas to write.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no.",
    "LOADING Redis is loading the dataset in memory",
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
]
CONFIG = load_config({"redis_url": "redis://127.0.0.1:1/0"}, env={})


def parsed(reply: str) -> Exception:
    """The exception redis-py raises for an error reply (ReadOnlyError, BusyLoadingError...)."""
    return _RESP2Parser.__new__(_RESP2Parser).parse_error(reply)


def failing(reply: str, times: int) -> Callable[[], str]:
    left = [times]

    def call() -> str:
        if left[0]:
            left[0] -= 1
            raise parsed(reply)
        return "added"
    return call


def sync_retrying(call: Callable[[], Any]) -> Any:
    return producer.Producer(CONFIG)._retrying_call(call, "the job was not enqueued")


def async_retrying(call: Callable[[], Any]) -> Any:
    async def run() -> Any:
        async def acall() -> Any:
            return call()
        return await aproducer.AsyncProducer(CONFIG)._retrying_call(
            acall, "the job was not enqueued")
    return asyncio.run(run())


PRODUCERS = [pytest.param(sync_retrying, id="sync"), pytest.param(async_retrying, id="async")]


@pytest.mark.parametrize("retrying", PRODUCERS)
@pytest.mark.parametrize("reply", FAILOVER_REPLIES, ids=lambda r: r.split()[0])
def test_a_failover_reply_is_waited_out(retrying: Callable[..., Any], reply: str) -> None:
    assert retrying(failing(reply, 2)) == "added"


@pytest.mark.parametrize("retrying", PRODUCERS)
def test_a_full_redis_is_refused_at_once_with_a_sentence(retrying: Callable[..., Any]) -> None:
    call = failing("OOM command not allowed when used memory > 'maxmemory'.", 1)
    with pytest.raises(WriteRefused, match="the job was not enqueued"):
        retrying(call)
    assert call() == "added"  # tried once: nothing waited


@pytest.mark.parametrize("retrying", PRODUCERS)
def test_too_few_replicas_past_the_window_is_refused(
        retrying: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer, "ENQUEUE_RETRY_SECONDS", 0.3)
    monkeypatch.setattr(aproducer, "ENQUEUE_RETRY_SECONDS", 0.3)
    with pytest.raises(WriteRefused, match="replica"):
        retrying(failing("NOREPLICAS Not enough good replicas to write.", 10_000))
