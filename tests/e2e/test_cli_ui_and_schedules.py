"""`supervisor ui` refuses unsafe binding; `supervisor schedules` lists what workers publish."""

from __future__ import annotations

import json
import time

import redis
from cli_harness import Cli, one_error_line

from supervisor.broker.schedules import DEFS_FORGET_AFTER, publish_definitions, read_definitions


def test_ui_refuses_to_serve_beyond_loopback_without_a_token(cli: Cli) -> None:
    done = cli("ui", "--bind", "0.0.0.0", "--port", "1")
    assert done.returncode == 2
    assert "--token-file" in one_error_line(done) and "--insecure" in one_error_line(done)
    short = cli("ui", "--token", "short", "--port", "1")
    assert short.returncode == 2 and "at least 8" in one_error_line(short)


def _definition(every: int = 600) -> dict[str, object]:
    return {"task": "reports.nightly", "cron": None, "every": every, "tz": "UTC",
            "args": [1], "kwargs": {}, "queue": "reports", "catch_up": "latest",
            "source": "code (reports)"}


def test_schedules_lists_what_the_workers_published(cli: Cli, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    publish_definitions(client, {"nightly": _definition()}, "node-7", time.time())
    done = cli("schedules", "--json")  # no --tasks, no --config: from Redis alone
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(row["name"], row["task"], row["queue"], row["every"]) for row in rows] == [
        ("nightly", "reports.nightly", "reports", 600)]
    assert rows[0]["source"] == "published by node-7 (code (reports))"
    assert rows[0]["next_fire_utc"] is not None
    text = cli("schedules")
    assert "nightly" in text.stdout and "never fired" in text.stdout


def test_a_definition_no_worker_publishes_any_more_is_forgotten(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    now = time.time()
    publish_definitions(client, {"old": _definition()}, "node-1", now - DEFS_FORGET_AFTER - 5)
    publish_definitions(client, {"new": _definition(60)}, "node-2", now)
    assert [row["name"] for row in read_definitions(client, now)] == ["new"]
    assert client.hkeys("sv:scheduledefs") == ["new"]  # the publisher deleted it
    client.hset("sv:scheduledefs", "garbage", "not json")
    assert [row["name"] for row in read_definitions(client, now)] == ["new"]
