"""SUPERVISOR_NAMESPACE: two applications on one Redis, each CLI command sees and acts on
its own application only (queues, pause, cancel, status, schedules)."""

from __future__ import annotations

import json
import time

import redis
from cli_harness import Cli

from supervisor.broker import keys
from supervisor.broker.schedules import publish_definitions

ONE = {"SUPERVISOR_NAMESPACE": "appone"}
TWO = {"SUPERVISOR_NAMESPACE": "apptwo"}


def _rows(cli: Cli, env: dict[str, str], *args: str) -> object:
    done = cli(*args, "--json", env=env)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


def test_each_namespace_s_cli_sees_and_acts_on_its_own_keys(cli: Cli, redis_url: str) -> None:
    first = cli("enqueue", "tasks.examples.add", "1", "2", env=ONE)
    assert first.returncode == 0, first.stderr
    job_one = first.stdout.strip()
    for _ in range(2):
        assert cli("enqueue", "tasks.examples.add", "3", "4", env=TWO).returncode == 0
    waiting = {name: {row["queue"]: row["waiting"] for row in _rows(cli, env, "queues")}
               for name, env in (("one", ONE), ("two", TWO))}
    assert waiting == {"one": {"default": 1}, "two": {"default": 2}}
    # Pausing one application's queue leaves the other's of the same name running.
    assert cli("queues", "pause", "default", env=ONE).returncode == 0
    paused = {name: [row["paused"] for row in _rows(cli, env, "queues")]
              for name, env in (("one", ONE), ("two", TWO))}
    assert paused == {"one": [True], "two": [False]}
    # A job id of one application is unknown to the other's cancel and job.
    assert cli("cancel", job_one, env=TWO).returncode != 0
    assert cli("job", job_one, env=TWO).returncode != 0
    assert cli("cancel", job_one, env=ONE).returncode == 0
    # status and schedules: only what was published in the namespace.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys.use_namespace("appone")
        publish_definitions(client, {"nightly": {
            "task": "reports.nightly", "cron": None, "every": 600, "tz": "UTC", "args": [],
            "kwargs": {}, "queue": "reports", "catch_up": "latest", "source": "code"}},
            "node-1", time.time())
    finally:
        keys.use_namespace(keys.DEFAULT_NAMESPACE)
    assert [row["name"] for row in _rows(cli, ONE, "schedules")] == ["nightly"]
    assert _rows(cli, TWO, "schedules") == []
    status = _rows(cli, TWO, "status")
    assert [row["queue"] for row in status["queues"]] == ["default"]  # type: ignore[index]
    assert not [name for name in client.keys("*") if name.startswith("sv:")]
