"""The command line's rough edges, as a user meets them: help, dead letters, what is printed.

Help texts are read from `--help` as printed; dead letters are made by a
worker or written as a worker would; `purge` is driven through a real
terminal (a pty).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
import redis
from cli_harness import ROOT, Cli, Jobs, StartWorker, one_error_line

from supervisor.broker import keys
from supervisor.broker.nodes import PRUNE_AFTER
from supervisor.config import Config
from supervisor.errors import EXIT_USAGE
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.worker.chores import NodeChores
from supervisor.worker.metrics import NullMetrics

ESC = "\x1b"
EVIL_TASK = f"tasks.{ESC}[2Jwipe"
EVIL_MESSAGE = f"boom{ESC}]0;owned{chr(7)}\r\nfake line"


# --- help -----------------------------------------------------------------------


def options_of(help_text: str) -> dict[str, str]:
    """`--flag` -> the rest of its help line(s), from click's plain help layout."""
    options: dict[str, str] = {}
    current = ""
    for line in help_text.split("Options:", 1)[1].splitlines():
        found = re.match(r"\s+(?:-\w, )?(--[\w-]+)(?: <\w+>)?\s*(.*)", line)
        if found and line.lstrip().startswith("-"):
            current = found.group(1)
            options[current] = found.group(2)
        elif current:
            options[current] += " " + line.strip()
    return options


def test_run_help_describes_every_option_with_its_default(cli: Cli) -> None:
    options = options_of(cli.ok("run", "--help"))
    assert len(options) >= 20
    for flag, text in options.items():
        assert text.strip(), f"{flag} has no description"
    expected = {"--workers": "[default: CPU count]", "--graceful-timeout": "[default: 30]",
                "--heartbeat-timeout": "[default: 10]", "--max-crashes": "[default: 3]",
                "--max-jobs-per-child": "[default: 0 (off)]", "--log-level": "[default: INFO]",
                "--log-format": "[default: text]", "--node-name": "[default: the host name]",
                "--metrics-bind": "[default: 127.0.0.1]",
                "--redis-url": "[default: redis://127.0.0.1:6379/0]"}
    for flag, default in expected.items():
        assert default in options[flag], (flag, options[flag])


def test_flags_take_no_value_and_h_is_help(cli: Cli) -> None:
    status, schedules, short, top, dead = cli.many(
        ["status", "--help"], ["schedules", "--help"], ["dead", "list", "-h"], ["-h"],
        ["dead", "-h"])
    for done in (status, schedules, short, top, dead):
        assert done.returncode == 0 and "Usage: supervisor" in done.stdout, done.stderr
    flags = options_of(status.stdout)
    assert {"--json", "--watch", "--help"} <= set(flags)
    for line in status.stdout.splitlines():
        if re.search(r"--(json|watch|help)\b", line):
            assert "<bool>" not in line and "BOOLEAN" not in line, line
    assert "[[schedule]]" in schedules.stdout  # not eaten as markup


# --- dead letters -----------------------------------------------------------------


def write_dead_letter(client: redis.Redis, job_id: str, task: str = "tasks.examples.add",
                      message: str = "boom", queue: str = "default") -> None:
    """A dead letter as a worker writes it (outcome.dead_letter)."""
    original = json.dumps({"id": job_id, "task": task, "queue": queue, "args": [1, "two"],
                           "kwargs": {"k": [3]}, "attempt": 2})
    client.sadd(keys.QUEUES, queue)
    client.xadd(keys.dead(queue), {"m": json.dumps({
        "id": job_id, "task": task, "queue": queue, "reason": "error", "exc_type": "ValueError",
        "message": message, "traceback": "Traceback (most recent call last):\n  File "
        "\"x.py\", line 1, in f\nValueError: " + message, "attempts": 2,
        "created": time.time() - 5, "failed_at": time.time(), "job": original})})


def test_dead_list_says_when_there_is_none(cli: Cli) -> None:
    assert cli.ok("dead", "list") == "no dead letters\n"
    assert cli.ok("dead", "list", "--queue", "reports") == "no dead letters in queue reports\n"
    assert cli.json("dead", "list") == []


def test_dead_show_is_readable_and_json_is_the_raw_form(cli: Cli, jobs: Jobs) -> None:
    write_dead_letter(jobs.producer.client, "job-1")
    shown, raw = cli.many(["dead", "show", "job-1"], ["dead", "show", "job-1", "--json"])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for fragment in ("job        job-1", "task       tasks.examples.add", "reason     error",
                     "error      ValueError: boom", "attempts   2", "args       [1, \"two\"]",
                     "kwargs     {\"k\": [3]}", "traceback:", "    ValueError: boom"):
        assert fragment in text, (fragment, text)
    assert '\\"' not in text  # the original message decoded, not an escaped string
    data = json.loads(raw.stdout)
    assert data["id"] == "job-1" and json.loads(data["job"])["args"] == [1, "two"]


def test_control_characters_from_jobs_are_escaped_when_printed(cli: Cli, jobs: Jobs) -> None:
    client = jobs.producer.client
    write_dead_letter(client, "job-evil", task=EVIL_TASK, message=EVIL_MESSAGE)
    client.set(keys.job("default", "job-evil"), json.dumps({
        "id": "job-evil", "task": EVIL_TASK, "queue": "default", "state": "failed",
        "reason": "error", "exc_type": "ValueError", "message": EVIL_MESSAGE,
        "attempts": [], "created": time.time()}))
    listed, shown, result, timeline = cli.many(["dead", "list"], ["dead", "show", "job-evil"],
                                               ["result", "job-evil"], ["job", "job-evil"])
    for done in (listed, shown, result, timeline):
        output = done.stdout + done.stderr
        assert ESC not in output and "\a" not in output and "\r" not in output, repr(output)
        assert "\\x1b" in output, output
    assert len(listed.stdout.splitlines()) == 1  # the message's newline cannot fake a row


def test_dead_purge_asks_on_a_terminal_unless_yes(cli: Cli, jobs: Jobs) -> None:
    client = jobs.producer.client
    write_dead_letter(client, "a")
    write_dead_letter(client, "b", queue="reports")

    answer, output = on_a_terminal(cli, ["dead", "purge"], "n\n")
    assert "Delete 2 dead letters (default: 1, reports: 1)?" in output, output
    assert answer != 0 and "nothing purged" in output
    assert client.xlen(keys.dead("default")) == 1

    unasked = cli("dead", "purge")  # not a terminal, no --yes: nothing is deleted
    assert unasked.returncode == EXIT_USAGE and "--yes" in one_error_line(unasked)
    assert client.xlen(keys.dead("reports")) == 1

    answer, output = on_a_terminal(cli, ["dead", "purge", "--queue", "reports"], "y\n")
    assert answer == 0 and "purged 1 dead letter" in output, output
    assert cli.ok("dead", "purge", "--yes").strip() == "purged 1 dead letter(s)"
    assert client.xlen(keys.dead("default")) == 0


def on_a_terminal(cli: Cli, args: list[str], typed: str) -> tuple[int, str]:
    """Run a command with a pty as its terminal, type `typed` at its prompt."""
    parent, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "supervisor", *args], cwd=ROOT,
                               env=cli.env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    output = b""
    deadline = time.monotonic() + 30
    typed_yet = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([parent], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(parent, 4096)
            except OSError:  # the command exited and closed the terminal
                break
            output += chunk
        if not typed_yet and b"?" in output:
            os.write(parent, typed.encode())
            typed_yet = True
        if process.poll() is not None and not ready:
            break
    os.close(parent)
    return process.wait(timeout=30), output.decode(errors="replace")


# --- status is read-only -----------------------------------------------------------


def test_status_needs_no_write_permission(cli: Cli, jobs: Jobs) -> None:
    client = jobs.producer.client
    state = {"node": "n1", "host": "h", "master_pid": 1, "version": "x", "state": "running",
             "started_at": time.time() - 9, "at": time.time(), "uptime": 9, "generation": 1,
             "workers_target": 1, "workers_live": 1, "jobs_done": 0, "queues": ["default"],
             "heartbeat_timeout": 10, "restarts": 0, "last_restart": "none", "workers": []}
    client.set(keys.nodestate("n1"), json.dumps(state))
    client.zadd(keys.NODESTATES, {"n1": time.time(), "gone": time.time() - 2 * PRUNE_AFTER})
    client.execute_command("ACL", "SETUSER", "viewer", "on", ">viewpw", "~sv:*", "+@read",
                           "+@connection")
    try:
        port = cli.redis_url.rsplit(":", 1)[1].split("/")[0]
        done = cli("status", "--json", "--redis-url", f"redis://viewer:viewpw@127.0.0.1:{port}/0")
        assert done.returncode == 0, done.stderr
        assert [node["node"] for node in json.loads(done.stdout)["nodes"]] == ["n1"]
        assert client.zscore(keys.NODESTATES, "gone") is not None  # status pruned nothing
    finally:
        client.execute_command("ACL", "DELUSER", "viewer")
    buffer = NodeStateBuffer()
    try:
        buffer.write_state(state)
        chores = NodeChores(Config(redis_url=cli.redis_url, node_name="n1"), "w", buffer,
                            NullMetrics())
        assert chores.publish_turn()
    finally:
        buffer.close()
    assert client.zscore(keys.NODESTATES, "gone") is None  # the publishing worker prunes


# --- a worker says where it works ------------------------------------------------------


def test_a_workers_first_lines_name_redis_queues_concurrency_and_tasks(
    cli: Cli, start_worker: StartWorker,
) -> None:
    port = cli.redis_url.rsplit(":", 1)[1].split("/")[0]
    cli.env["SUPERVISOR_REDIS_URL"] = f"redis://:hidden-pw@127.0.0.1:{port}/0"  # nopass default
    worker = start_worker(tasks="tasks.examples", queues="default,reports")
    assert worker.stop() == 0
    first = worker.output().splitlines()[:3]
    text = "\n".join(first)
    assert f"consuming default,reports from redis://:***@127.0.0.1:{port}/0" in text, first
    assert "one job at a time" in text, first
    assert "tasks.examples.add" in text and "tasks.examples.build_report" in text, first
    assert "hidden-pw" not in worker.output()
    cli.env["SUPERVISOR_CONCURRENCY"] = "8"
    many = start_worker()
    assert many.stop() == 0
    assert "up to 8 jobs at once" in "\n".join(many.output().splitlines()[:3])


@pytest.mark.parametrize("flag", ["--yes", "-y"])
def test_purge_yes_flag_help_has_no_default_true(cli: Cli, flag: str) -> None:
    out = cli.ok("dead", "purge", "--help")
    assert flag in out and "[default: True]" not in out


def test_worker_takes_cancel_grace_like_run(cli: Cli) -> None:
    # Wired into the configuration (validated there), not merely accepted.
    done = cli("worker", "--tasks", "tasks.examples", "--cancel-grace", "-1")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "invalid value -1.0 for --cancel-grace" in done.stderr, done.stderr
