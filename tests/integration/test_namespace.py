"""--namespace: two applications on one Redis do not see each other's queues or jobs."""

from __future__ import annotations

import redis

from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.broker.inspect import known_queues
from supervisor.config import load_config


def test_two_namespaces_share_one_redis_without_seeing_each_other(redis_url: str) -> None:
    try:
        first = Producer(load_config({"redis_url": redis_url, "namespace": "appone"}))
        first.submit_named("tasks.examples.add", "shared", (1, 2), {}, job_id="job-one")
        assert keys.stream("shared") == "appone:{shared}:stream"
        assert known_queues(first.client) == ["shared"]
        second = Producer(load_config({"redis_url": redis_url, "namespace": "apptwo"}))
        assert known_queues(second.client) == []  # the other application's queue is not seen
        second.submit_named("tasks.examples.add", "shared", (3, 4), {}, job_id="job-two")
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        names = set(client.keys("*"))
        assert {"appone:queues", "apptwo:queues", "appone:{shared}:stream",
                "apptwo:{shared}:stream", "appone:{shared}:job:job-one",
                "apptwo:{shared}:job:job-two"} <= names
        assert not any(name.startswith("sv:") for name in names)
        assert client.xlen("appone:{shared}:stream") == client.xlen("apptwo:{shared}:stream") == 1
    finally:
        keys.use_namespace(keys.DEFAULT_NAMESPACE)


def test_a_namespace_with_braces_or_colons_is_refused() -> None:
    import pytest

    from supervisor.errors import ConfigError

    for bad in ("a{b}", "a:b", "", "a b"):
        with pytest.raises(ConfigError, match="--namespace"):
            load_config({"namespace": bad})
