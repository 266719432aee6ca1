"""The message schema: round trip and strict refusal of anything else."""

from __future__ import annotations

import json

import pytest

from supervisor.core.job import Job, decode, peek_id
from supervisor.errors import InvalidMessage, PayloadTooLarge


def test_round_trip() -> None:
    job = Job(id="j1", task="m.f", queue="q", args=(1, "a"), kwargs={"k": [1]}, host="h")
    again = decode(job.encode())
    assert again == job
    following = again.next_attempt({"attempt": 1, "outcome": "retry"})
    assert following.attempt == 2 and following.history == ({"attempt": 1, "outcome": "retry"},)
    assert decode(following.encode()) == following
    assert again.after_crash().crashes == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{nope", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"v": 99}), "unsupported message version"),
        (json.dumps({"v": 1, "id": "", "task": "t"}), "invalid job id"),
        (json.dumps({"v": 1, "id": "x", "task": 3}), "'task'"),
        (json.dumps({"v": 1, "id": "x", "task": "t", "queue": "q", "args": {}, "kwargs": {},
                     "attempt": 1, "crashes": 0, "created": 1.0}), "'args'"),
        (json.dumps({"v": 1, "id": "x", "task": "t", "queue": "q", "args": [], "kwargs": {},
                     "attempt": True, "crashes": 0, "created": 1.0}), "'attempt'"),
    ],
)
def test_invalid_messages_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        decode(text)


def test_unserialisable_arguments_and_size_limit() -> None:
    with pytest.raises(InvalidMessage, match="not JSON-serialisable"):
        Job(id="x", task="t", queue="q", args=(object(),)).encode()
    with pytest.raises(PayloadTooLarge, match="over the limit of 100"):
        Job(id="x", task="t", queue="q", args=("y" * 200,)).encode(limit=100)


def test_peek_id() -> None:
    assert peek_id('{"id": "abc"}') == "abc"
    assert peek_id("garbage") is None


@pytest.mark.parametrize("bad", ["", "a b", "tab\there", "x" * 201, "new\nline"])
def test_job_ids_without_whitespace(bad: str) -> None:
    from supervisor.core.job import check_job_id

    with pytest.raises(ValueError, match="invalid job id"):
        check_job_id(bad)
    message = Job(id="ok", task="t", queue="q").encode()
    message = message.replace('"id":"ok"', f'"id":{json.dumps(bad)}')
    with pytest.raises(InvalidMessage, match="invalid job id"):
        decode(message)
