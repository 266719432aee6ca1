"""End-to-end tests of the command line: dead letters, and user errors.

A user error is one line on stderr, a named exit code and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_harness import (
    CLI_TIMEOUT,
    LATE_TASKS,
    ROOT,
    WAIT,
    Cli,
    Jobs,
    StartWorker,
    counts,
    one_error_line,
    write_module,
)
from helpers import wait_until
from redis_server import free_port

from supervisor.broker import keys
from supervisor.errors import (
    EXIT_NOT_FOUND,
    EXIT_REDIS_REFUSED,
    EXIT_REDIS_UNAVAILABLE,
    EXIT_USAGE,
)


@dataclass
class DeadRedisEnqueue:
    url: str
    process: subprocess.Popen[str]


@pytest.fixture(scope="module", autouse=True)
def dead_redis_enqueue() -> Iterator[DeadRedisEnqueue]:
    """`enqueue` to a port nobody listens on, started with the module.

    A producer retries an unreachable Redis for ~10 s by design; starting it
    first lets that wait overlap the other tests instead of adding to them.
    The URL carries a password, which must never be printed.
    """
    url = f"redis://app:s3cret@127.0.0.1:{free_port()}/0"
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SUPERVISOR_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "enqueue", "tasks.examples.add", "1", "2",
         "--redis-url", url],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield DeadRedisEnqueue(url, process)
    if process.poll() is None:
        process.kill()
    process.communicate()



# --- dead letters -------------------------------------------------------------


def make_dead_letters(jobs: Jobs, start_worker: StartWorker) -> tuple[str, str]:
    """(unknown-task job id, rejected job id), both dead-lettered by a worker."""
    worker = start_worker()
    unknown = jobs.add("no.such.task", 1)
    rejected = jobs.add("tasks.examples.build_report", "", queue="reports")
    jobs.settle(unknown, rejected)
    assert worker.stop() == 0
    return unknown, rejected


def test_dead_list_show_and_purge(cli: Cli, jobs: Jobs, start_worker: StartWorker) -> None:
    unknown, rejected = make_dead_letters(jobs, start_worker)
    listed, only_reports, text, show, misplaced, stats = cli.many(
        ["dead", "list", "--json"], ["dead", "list", "--queue", "reports", "--json"],
        ["dead", "list"], ["dead", "show", rejected, "--json"],
        ["dead", "show", unknown, "--queue", "reports"],  # it is in default
        ["queues", "--json"])

    letters = {letter["id"]: letter for letter in json.loads(listed.stdout)}
    assert set(letters) == {unknown, rejected}
    assert (letters[unknown]["reason"], letters[unknown]["task"], letters[unknown]["queue"]) \
        == ("invalid", "no.such.task", "default")
    assert "not registered" in letters[unknown]["message"]
    assert (letters[rejected]["reason"], letters[rejected]["task"], letters[rejected]["queue"]) \
        == ("rejected", "tasks.examples.build_report", "reports")
    assert letters[rejected]["exc_type"] == "Reject"
    for letter in letters.values():
        assert "traceback" not in letter  # the list stays short; `show` has it
        assert letter["attempts"] == 1
        assert letter["created"] == json.loads(letter["job"])["created"]
        assert letter["failed_at"] >= letter["created"]

    assert [letter["id"] for letter in json.loads(only_reports.stdout)] == [rejected]
    rows = text.stdout.splitlines()
    assert len(rows) == 2
    assert any(unknown in row and "no.such.task" in row and "invalid" in row for row in rows)
    assert any(rejected in row and "reports" in row and "rejected" in row for row in rows)

    shown = json.loads(show.stdout)
    assert (shown["id"], shown["reason"], shown["attempts"]) == (rejected, "rejected", 1)
    assert "a report needs a day" in shown["traceback"]
    assert json.loads(shown["job"])["args"] == [""]
    assert misplaced.returncode == EXIT_NOT_FOUND and unknown in one_error_line(misplaced)
    assert {s["queue"]: s["dead"] for s in json.loads(stats.stdout)} == \
        {"default": 1, "reports": 1}

    purged = cli.ok("dead", "purge", "--queue", "reports", "--yes")
    assert purged.strip() == "purged 1 dead letter(s)"
    assert [letter["id"] for letter in cli.json("dead", "list")] == [unknown]
    assert cli.ok("dead", "purge", "--yes").strip() == "purged 1 dead letter(s)"
    listed, stats = cli.many(["dead", "list"], ["queues", "--json"])
    assert listed.stdout == "no dead letters\n"
    assert {s["queue"]: s["dead"] for s in json.loads(stats.stdout)} == \
        {"default": 0, "reports": 0}


def test_dead_requeue_runs_the_job_again(
    cli: Cli, jobs: Jobs, start_worker: StartWorker, tmp_path: Path
) -> None:
    # First deploy: the worker does not know e2e_late.mul yet.
    job_id = jobs.add("e2e_late.mul", 6, 7)
    worker = start_worker()
    jobs.settle(job_id)
    assert worker.stop() == 0
    [letter] = cli.json("dead", "list")
    assert (letter["id"], letter["reason"]) == (job_id, "invalid")

    # Fixed deploy: a worker that has the module; requeue the job.
    write_module(tmp_path, "e2e_late", LATE_TASKS)
    worker = start_worker(tasks="e2e_late", queues="default", cwd=tmp_path)
    assert cli.ok("dead", "requeue", job_id).strip() == "requeued 1 job(s)"
    assert cli.ok("result", job_id, "--wait", WAIT) == "42\n"
    assert worker.stop() == 0
    listed, stats = cli.many(["dead", "list", "--json"], ["queues", "--json"])
    assert json.loads(listed.stdout) == []
    assert json.loads(stats.stdout) == [{"queue": "default", **counts()}]


def test_dead_requeue_all_skips_what_cannot_run(
    cli: Cli, jobs: Jobs, start_worker: StartWorker
) -> None:
    client = jobs.producer.client
    client.sadd(keys.QUEUES, "default")
    entry: Any = client.xadd(keys.stream("default"), {"m": "{not json"})  # undecodable
    worker = start_worker()
    unknown = jobs.add("no.such.task")
    jobs.settle(unknown)
    wait_until(lambda: jobs.stats("default")["dead"] == 2, timeout=15,
               what="both messages dead-lettered")
    assert worker.stop() == 0
    garbage = f"invalid-default-{entry}"  # invalid-<queue>-<entry id>
    assert {letter["id"] for letter in cli.json("dead", "list")} == {unknown, garbage}

    done = cli("dead", "requeue", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "requeued 1 job(s), skipped 1"
    assert garbage in done.stderr and "purge" in done.stderr and "Traceback" not in done.stderr
    state, stats, by_id = cli.many(["result", unknown, "--json"], ["queues", "--json"],
                                   ["dead", "requeue", garbage])
    assert json.loads(state.stdout)["state"] == "queued"
    assert json.loads(stats.stdout) == [{"queue": "default", **counts(waiting=1, dead=1)}]
    # Asked for by id, a letter that cannot run is an error; it stays for purge.
    assert by_id.returncode == EXIT_USAGE
    assert "Traceback" not in by_id.stderr and garbage in by_id.stderr
    assert [letter["id"] for letter in cli.json("dead", "list")] == [garbage]


def test_dead_commands_user_errors(cli: Cli) -> None:
    usage = (["dead", "requeue"], ["dead", "requeue", "x", "--all"])
    missing = (["dead", "requeue", "nope"], ["dead", "show", "nope"])
    for args, done in zip(usage + missing, cli.many(*usage, *missing), strict=True):
        line = one_error_line(done)
        if args in usage:
            assert done.returncode == EXIT_USAGE and "JOB_ID or --all" in line, args
        else:
            assert done.returncode == EXIT_NOT_FOUND and "nope" in line, args


# --- error paths --------------------------------------------------------------


def test_bad_kwargs_is_a_usage_error(cli: Cli) -> None:
    cases = {"{bad": "not valid JSON", "": "not valid JSON",
             "[1, 2]": "must be a JSON object", '"y"': "must be a JSON object"}
    runs = cli.many(*[["enqueue", "tasks.examples.add", "1", "--kwargs", kwargs]
                      for kwargs in cases])
    for (kwargs, says), done in zip(cases.items(), runs, strict=True):
        assert done.returncode == EXIT_USAGE, kwargs
        assert says in one_error_line(done), kwargs
    assert cli.json("queues") == []  # nothing was enqueued


def test_unreachable_redis_exits_3_naming_the_url(
    cli: Cli, dead_redis_enqueue: DeadRedisEnqueue
) -> None:
    url = dead_redis_enqueue.url
    shown = url.replace("s3cret", "***")
    commands = (["queues"], ["result", "x"], ["dead", "list"], ["dead", "purge"])
    for args, done in zip(commands, cli.many(*commands, env={"SUPERVISOR_REDIS_URL": url}),
                          strict=True):
        assert done.returncode == EXIT_REDIS_UNAVAILABLE, args
        line = one_error_line(done)
        assert shown in line and "s3cret" not in line

    out, err = dead_redis_enqueue.process.communicate(timeout=CLI_TIMEOUT)
    assert dead_redis_enqueue.process.returncode == EXIT_REDIS_UNAVAILABLE, err
    assert "Traceback" not in err and "s3cret" not in out + err
    # A notice that it is retrying may come first; then exactly one error line.
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and shown in errors[0], err
    assert err.splitlines()[-1] == errors[0]


def test_wrong_credentials_say_so(cli: Cli) -> None:
    port = cli.redis_url.rsplit(":", 1)[1].split("/")[0]
    done = cli("queues", "--redis-url", f"redis://nobody:wrong@127.0.0.1:{port}/0")
    assert done.returncode == EXIT_REDIS_REFUSED  # a restart cannot fix it
    line = one_error_line(done)
    assert f"Redis refused user 'nobody' at 127.0.0.1:{port}, database 0" in line
    assert "password" in line and "wrong" not in line


def test_bad_url_scheme_is_a_usage_error(cli: Cli) -> None:
    option = cli("enqueue", "tasks.examples.add", "1", "2", "--redis-url", "http://127.0.0.1:1/")
    env = cli("queues", env={"SUPERVISOR_REDIS_URL": "ftp://x"})
    assert option.returncode == EXIT_USAGE
    assert "--redis-url" in one_error_line(option)
    assert env.returncode == EXIT_USAGE
    assert "SUPERVISOR_REDIS_URL" in one_error_line(env)


def test_payload_too_large_is_refused(cli: Cli) -> None:
    done = cli("enqueue", "tasks.examples.add", "x" * 500, "1",
               env={"SUPERVISOR_MAX_PAYLOAD_BYTES": "100"})
    assert done.returncode == EXIT_USAGE
    assert "limit of 100" in one_error_line(done)
    assert cli.json("queues") == []


def test_unknown_option_is_a_typer_usage_error(cli: Cli) -> None:
    wrong = (["enqueue", "tasks.examples.add", "--bogus"], ["queues", "--bogus"],
             ["no-such-command"])
    for args, done in zip(wrong, cli.many(*wrong), strict=True):
        assert done.returncode == EXIT_USAGE, args
        assert "Usage: supervisor" in done.stderr and "Traceback" not in done.stderr
