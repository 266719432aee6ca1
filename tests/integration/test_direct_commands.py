"""broker/direct.py against a real Redis: replies, errors in step, reloads, reconnects, forks."""

from __future__ import annotations

import os

import pytest
import redis

from supervisor.broker import scripts
from supervisor.broker.connection import connect
from supervisor.broker.direct import DirectCommands, DirectScript


def test_replies_are_decoded_like_the_clients(redis_url: str) -> None:
    direct = DirectCommands(connect(redis_url))
    assert direct.call("SET", "k", "välue") == "OK"
    assert direct.call("GET", "k") == "välue"
    assert direct.call("INCRBY", "n", 5) == 5


def test_an_error_reply_in_a_pipeline_keeps_the_connection_in_step(redis_url: str) -> None:
    direct = DirectCommands(connect(redis_url))
    direct.call("SET", "text", "not a hash")
    first, failed, last = direct.call_many([("INCR", "n"), ("HSET", "text", "f", "v"),
                                            ("GET", "text")])
    assert first == 1
    assert isinstance(failed, redis.exceptions.ResponseError) and "WRONGTYPE" in str(failed)
    assert last == "not a hash"
    assert direct.call("INCR", "n") == 2  # the next reply is the next command's


def test_a_single_error_reply_raises(redis_url: str) -> None:
    direct = DirectCommands(connect(redis_url))
    direct.call("SET", "text", "x")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        direct.call("HSET", "text", "f", "v")
    assert direct.call("GET", "text") == "x"


def test_a_script_forgotten_by_the_server_is_loaded_again(redis_url: str) -> None:
    client = connect(redis_url)
    promote = DirectScript(DirectCommands(client), scripts.load(client, "promote"))
    client.script_flush()
    assert promote(["sv:{q}:delayed", "sv:{q}:stream"], [0, 10]) == 0
    assert client.script_exists(promote.sha) == [True]


def test_a_killed_connection_raises_then_reconnects(redis_url: str) -> None:
    client = connect(redis_url)
    direct = DirectCommands(client)
    direct.call("CLIENT", "SETNAME", "direct-under-test")
    client.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(redis.exceptions.ConnectionError):
        direct.call("PING")
    assert direct.call("PING") == "PONG"  # a fresh connection on the next call


def test_a_forked_child_uses_its_own_connection(redis_url: str) -> None:
    direct = DirectCommands(connect(redis_url))
    parent_id = direct.call("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the id of the connection it talks on
        try:
            os.write(write, str(direct.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_id = int(os.read(read, 64))
    os.close(read)
    assert status == 0
    assert child_id != parent_id
    assert direct.call("CLIENT", "ID") == parent_id  # the parent's connection was not disturbed
