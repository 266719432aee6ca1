"""End-to-end tests of the `supervisor` command line: help, enqueue, result, queues, worker.

The command under test always runs as `python -m supervisor ...` against the
session's private Redis (flushed before each test); workers are foreground
`supervisor worker` subprocesses stopped with SIGTERM, whose exit code is
asserted. Setting up jobs and waiting for a worker go through the library in
this process when the CLI is not what the test is about: every CLI start
costs ~0.5 s of imports, and the file must stay fast.

Nothing here sleeps and hopes: waits are on conditions with deadlines, and no
assertion is about how long something took.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_harness import (
    CLI_TIMEOUT,
    ECHO_TASKS,
    WAIT,
    Cli,
    Jobs,
    StartWorker,
    counts,
    numbers,
    one_error_line,
    write_module,
)
from helpers import wait_until

from supervisor import __version__
from supervisor.errors import (
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_TASK_IMPORT,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)

# --- version and help ---------------------------------------------------------


def test_version(cli: Cli) -> None:
    assert cli.ok("--version") == f"supervisor {__version__}\n"
    script = Path(sys.executable).with_name("supervisor")  # the console script
    if script.exists():
        done = subprocess.run([str(script), "--version"], env=cli.env, capture_output=True,
                              text=True, timeout=CLI_TIMEOUT, check=False)
        assert (done.returncode, done.stdout) == (0, f"supervisor {__version__}\n")


COMMANDS = ["enqueue", "result", "worker", "run", "dead list", "dead show", "dead requeue",
            "dead purge", "cancel", "queues pause", "queues resume"]


def test_help_of_every_command_shows_an_example(cli: Cli) -> None:
    for command, done in zip(COMMANDS, cli.many(*[[*c.split(), "--help"] for c in COMMANDS]),
                             strict=True):
        assert done.returncode == 0, (command, done.stderr)
        assert f"Usage: supervisor {command} " in done.stdout
        assert f"Example: supervisor {command} " in done.stdout, done.stdout


@pytest.mark.parametrize("command", ["queues", "dead", ""])
def test_help_of_groups_has_an_example(cli: Cli, command: str) -> None:
    out = cli.ok(*command.split(), "--help")
    assert "Usage: supervisor" in out
    assert f"Example: supervisor {command}".rstrip() in out


# --- enqueue ------------------------------------------------------------------


def test_enqueue_parses_args_as_json_else_strings_and_takes_kwargs(
    cli: Cli, start_worker: StartWorker, tmp_path: Path
) -> None:
    write_module(tmp_path, "e2e_tasks", ECHO_TASKS)
    worker = start_worker(tasks="e2e_tasks", queues="default", cwd=tmp_path)
    as_json, as_text = cli.many(
        ["enqueue", "e2e_tasks.echo", "1", "2.5", "true", "null", '"7"', "plain", "two words",
         '[1, "a"]', '{"k": [null]}', "007", "--kwargs", '{"name": "x", "n": {"deep": 1}}',
         "--wait", WAIT, "--json"],
        # Without --json: the id on stderr, the result as JSON on stdout.
        ["enqueue", "e2e_tasks.echo", "a", "--kwargs", '{"b": 2}', "--wait", WAIT],
    )
    assert worker.stop() == 0

    assert as_json.returncode == 0, as_json.stderr
    shown = json.loads(as_json.stdout)
    assert set(shown) == {"id", "state", "result"} and shown["state"] == "succeeded"
    assert shown["result"] == {
        "args": [1, 2.5, True, None, "7", "plain", "two words", [1, "a"], {"k": [None]},
                 "007"],
        "kwargs": {"name": "x", "n": {"deep": 1}},
    }
    assert as_text.returncode == 0, as_text.stderr
    assert json.loads(as_text.stdout) == {"args": ["a"], "kwargs": {"b": 2}}
    assert cli.json("result", as_text.stderr.strip())["state"] == "succeeded"


def test_enqueue_wait_prints_the_result_and_json_gives_id_and_queue(
    cli: Cli, start_worker: StartWorker
) -> None:
    worker = start_worker()
    waited, report = cli.many(
        ["enqueue", "tasks.examples.add", "4", "5", "--wait", WAIT],
        # No --queue: the task's own queue, since its module imports from the cwd.
        ["enqueue", "tasks.examples.build_report", "2024-05-01", "--json"],
    )
    assert (waited.returncode, waited.stdout) == (0, "9\n"), waited.stderr
    shown = json.loads(report.stdout)
    assert set(shown) == {"id", "queue"} and shown["queue"] == "reports"
    done = cli("result", shown["id"], "--wait", WAIT, "--json")
    assert json.loads(done.stdout) == {"id": shown["id"], "state": "succeeded",
                                       "result": "report for 2024-05-01: ok"}
    assert worker.stop() == 0

    other, unknown = cli.many(["enqueue", "tasks.examples.add", "1", "2", "--queue", "other",
                               "--json"], ["enqueue", "not.importable.task", "--json"])
    assert json.loads(other.stdout)["queue"] == "other"
    assert json.loads(unknown.stdout)["queue"] == "default"
    assert numbers(cli.stats()) == {"default": counts(waiting=1), "other": counts(waiting=1),
                                    "reports": counts()}


def test_countdown_is_scheduled_first_then_runs_when_due(
    cli: Cli, start_worker: StartWorker
) -> None:
    later = cli.enqueue("tasks.examples.add", "1", "2", "--countdown", "3600")
    record, stats = cli.many(["result", later, "--json"], ["queues", "--json"])
    assert json.loads(record.stdout)["state"] == "scheduled"
    assert json.loads(stats.stdout) == [{"queue": "default", **counts(scheduled=1)}]

    worker = start_worker()
    done = cli("enqueue", "tasks.examples.add", "2", "3", "--countdown", "0.5", "--wait", WAIT)
    assert (done.returncode, done.stdout) == (0, "5\n"), done.stderr
    soon, far = cli.many(["result", done.stderr.strip(), "--json"], ["result", later, "--json"])
    assert json.loads(soon.stdout)["state"] == "succeeded"
    assert json.loads(far.stdout)["state"] == "scheduled"  # still waiting its turn
    assert worker.stop() == 0


def test_enqueue_expires_cancels_a_job_not_started_in_time_and_spares_the_others(
    cli: Cli, start_worker: StartWorker
) -> None:
    doomed = cli.enqueue("tasks.examples.add", "1", "2", "--expires", "0.2")
    spared = cli.enqueue("tasks.examples.add", "2", "3", "--expires", "3600")
    zero, negative = cli.many(["enqueue", "tasks.examples.add", "--expires", "0"],
                              ["enqueue", "tasks.examples.add", "--expires", "-1"])
    assert zero.returncode == negative.returncode == EXIT_USAGE
    assert "--expires" in zero.stderr and "--expires" in negative.stderr
    created = cli.json("result", doomed)["created"]
    wait_until(lambda: time.time() > created + 0.3, what="the first job past its expiry")
    worker = start_worker()
    expired = cli("result", doomed, "--wait", WAIT, "--json")
    assert expired.returncode == EXIT_JOB_CANCELLED, expired.stderr
    assert json.loads(expired.stdout)["reason"] == "expired", expired.stdout
    # Counted from when the job is due: a countdown longer than the expiry does not
    # expire it (counted from now, it would have expired 0.5 s before it was due). The
    # worker runs already, so it starts the job soon after it is due (3.5 s to spare).
    delayed = cli.enqueue("tasks.examples.add", "3", "4", "--countdown", "4",
                          "--expires", "3.5")
    for job_id, total in ((spared, 5), (delayed, 7)):
        done = cli.json("result", job_id, "--wait", WAIT)
        assert (done["state"], done["result"]) == ("succeeded", total)
    assert worker.stop() == 0


def test_cancel_a_queued_job_then_result_and_job_say_who_cancelled_it(
        cli: Cli, start_worker: StartWorker) -> None:
    job_id = cli.enqueue("tasks.examples.add", "1", "2")
    assert cli.ok("cancel", job_id, "--by", "ops") == f"{job_id}: cancelled\n"
    again = cli("cancel", job_id, "nope", "--json")
    assert again.returncode == 4  # one of them is unknown
    assert [row["result"] for row in json.loads(again.stdout)] == ["ended", "unknown"]
    worker = start_worker()
    waited = cli("result", job_id, "--wait", WAIT)
    assert waited.returncode == 9 and "cancelled by ops" in waited.stderr
    assert "final state: cancelled by ops" in cli.ok("job", job_id)
    assert cli.json("result", job_id, "--json")["cancelled"]["by"] == "ops"
    assert worker.stop() == 0
    assert numbers(cli.stats()) == {"default": counts()}  # acknowledged, never run


def test_pause_and_resume_a_queue_show_in_queues(cli: Cli) -> None:
    cli.enqueue("tasks.examples.add", "1", "2")
    assert cli.ok("queues", "pause", "default") == "queue default paused\n"
    shown = cli.stats()["default"]
    assert (shown["paused"], shown["waiting"]) == (True, 1) and "by" in shown["paused_by"]
    assert "paused" in cli.ok("queues").splitlines()[1]
    assert cli.ok("queues", "resume", "default") == "queue default resumed\n"
    assert cli.ok("queues", "resume", "default") == "queue default was not paused\n"
    assert numbers(cli.stats()) == {"default": counts(waiting=1)}
    assert cli("cancel").returncode == 2


def test_same_job_id_twice_is_one_job(cli: Cli, start_worker: StartWorker) -> None:
    assert cli.enqueue("tasks.examples.add", "1", "2", "--job-id", "order-17") == "order-17"
    assert cli.enqueue("tasks.examples.add", "10", "20", "--job-id", "order-17") == "order-17"
    assert numbers(cli.stats()) == {"default": counts(waiting=1)}

    worker = start_worker()
    assert cli.ok("result", "order-17", "--wait", WAIT) == "3\n"  # the first enqueue won
    assert worker.stop() == 0
    assert numbers(cli.stats()) == {"default": counts()}


def test_an_explicit_id_reused_in_two_queues_is_never_answered_with_the_wrong_job(
        cli: Cli) -> None:
    assert cli.enqueue("tasks.examples.add", "1", "2", "--job-id", "twice") == "twice"
    assert cli.enqueue("tasks.examples.add", "10", "20", "--job-id", "twice",
                       "--queue", "other") == "twice"
    for command in ("job", "result"):
        done = cli(command, "twice")
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "exists in queues default, other; pass --queue" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert cli.json("job", "twice", "--queue", "other")["queue"] == "other"
    assert cli.json("result", "twice", "-q", "default")["queue"] == "default"
    assert cli.json("result", "twice", "-q", "other")["queue"] == "other"


def test_args_that_are_not_strict_json_are_strings(
    cli: Cli, start_worker: StartWorker, tmp_path: Path
) -> None:
    done = cli("enqueue", "e2e_tasks.echo", "NaN", "Infinity")
    assert done.returncode == 0, done.stderr
    write_module(tmp_path, "e2e_tasks", ECHO_TASKS)
    worker = start_worker(tasks="e2e_tasks", queues="default", cwd=tmp_path)
    assert json.loads(cli.ok("result", done.stdout.strip(), "--wait", WAIT)) == \
        {"args": ["NaN", "Infinity"], "kwargs": {}}
    assert worker.stop() == 0


# --- result -------------------------------------------------------------------


def test_result_of_a_succeeded_job(cli: Cli, jobs: Jobs, start_worker: StartWorker) -> None:
    worker = start_worker()
    job_id = jobs.add("tasks.examples.add", 20, 22)
    jobs.settle(job_id)
    assert worker.stop() == 0

    text, as_json, waited = cli.many(["result", job_id], ["result", job_id, "--json"],
                                     ["result", job_id, "--wait", "1"])
    assert (text.returncode, text.stdout.splitlines()) == (0, ["state: succeeded", "result: 42"])
    record = json.loads(as_json.stdout)
    assert (record["id"], record["queue"], record["state"], record["result"]) == \
        (job_id, "default", "succeeded", 42)
    assert record["task"] == "tasks.examples.add"
    assert (waited.returncode, waited.stdout) == (0, "42\n")


def test_result_of_a_failed_job_exits_6(cli: Cli, start_worker: StartWorker) -> None:
    worker = start_worker()
    done = cli("enqueue", "tasks.examples.build_report", '""', "--wait", WAIT)
    assert worker.stop() == 0
    assert done.returncode == EXIT_JOB_FAILED
    job_id, failure = done.stderr.splitlines()  # the id, then what went wrong
    assert failure == "failed (rejected): Reject: a report needs a day"

    text, waited, waited_json = cli.many(["result", job_id], ["result", job_id, "--wait", "1"],
                                         ["result", job_id, "--wait", "1", "--json"])
    assert text.returncode == EXIT_JOB_FAILED
    assert text.stdout.splitlines() == ["state: failed",
                                        "error (rejected): Reject: a report needs a day"]
    assert waited.returncode == EXIT_JOB_FAILED
    assert waited.stderr.strip() == "failed (rejected): Reject: a report needs a day"
    assert waited_json.returncode == EXIT_JOB_FAILED
    assert json.loads(waited_json.stdout) == {
        "id": job_id, "state": "failed", "reason": "rejected", "exc_type": "Reject",
        "message": "a report needs a day"}
    assert all("Traceback" not in run.stderr for run in (done, text, waited, waited_json))


def test_result_json_of_a_failed_job_also_exits_6(
    cli: Cli, jobs: Jobs, start_worker: StartWorker
) -> None:
    worker = start_worker()
    job_id = jobs.add("tasks.examples.build_report", "", queue="reports")
    jobs.settle(job_id)
    assert worker.stop() == 0
    done = cli("result", job_id, "--json")
    assert json.loads(done.stdout)["state"] == "failed"
    assert done.returncode == EXIT_JOB_FAILED


def test_result_of_an_unknown_job_is_one_line_and_exit_4(cli: Cli) -> None:
    extras: tuple[list[str], ...] = ([], ["--wait", "1"], ["--json"])
    for extra, done in zip(extras, cli.many(*[["result", "no-such-job", *e] for e in extras]),
                           strict=True):
        assert done.returncode == EXIT_NOT_FOUND, extra
        assert "no-such-job" in one_error_line(done)


def test_waiting_too_long_exits_7(cli: Cli, jobs: Jobs) -> None:
    job_id = jobs.add("tasks.examples.add", 1, 2)  # no worker runs
    result, enqueue = cli.many(["result", job_id, "--wait", "0.3"],
                               ["enqueue", "tasks.examples.add", "1", "2", "--wait", "0.3"])
    assert result.returncode == EXIT_TIMEOUT
    line = one_error_line(result)
    assert f"supervisor result {job_id}" in line and "queued" in line

    assert enqueue.returncode == EXIT_TIMEOUT
    new_id, line = enqueue.stderr.splitlines()  # the job id, then the one error line
    assert line.startswith("error: ") and f"supervisor result {new_id}" in line
    assert numbers(cli.stats()) == {"default": counts(waiting=2)}


# --- queues -------------------------------------------------------------------


def test_queues_counts_match(cli: Cli, jobs: Jobs, start_worker: StartWorker) -> None:
    assert cli.json("queues") == []
    assert cli.ok("queues").split() == ["queue", "waiting", "running", "scheduled", "dead",
                                        "paused"]
    for n in range(3):
        jobs.add("tasks.examples.add", n, 1)
    for _ in range(2):
        jobs.add("tasks.examples.add", 1, 1, countdown=3600)
    jobs.add("tasks.examples.build_report", "2024-01-01", queue="reports")

    as_json, as_text = cli.many(["queues", "--json"], ["queues"])
    assert json.loads(as_json.stdout) == [
        {"queue": "default", **counts(waiting=3, scheduled=2)},
        {"queue": "reports", **counts(waiting=1)},
    ]
    table = [row.split() for row in as_text.stdout.splitlines()]
    assert table == [["queue", "waiting", "running", "scheduled", "dead", "paused"],
                     ["default", "3", "0", "2", "0"],
                     ["reports", "1", "0", "0", "0"]]

    worker = start_worker()
    rejected = jobs.add("tasks.examples.build_report", "", queue="reports")
    jobs.settle(rejected)
    wait_until(lambda: jobs.stats("default")["waiting"] == 0, timeout=15,
               what="the worker drains default")
    assert worker.stop() == 0
    assert numbers(cli.stats()) == {"default": counts(scheduled=2), "reports": counts(dead=1)}


# --- worker -------------------------------------------------------------------


def test_worker_sigterm_finishes_the_current_job_and_exits_0(
    cli: Cli, jobs: Jobs, start_worker: StartWorker
) -> None:
    worker = start_worker()
    job_id = jobs.add("tasks.examples.slow", 1.0)
    wait_until(lambda: jobs.state(job_id) == "started", timeout=15, what="job started")
    assert worker.stop() == 0
    record, stats = cli.many(["result", job_id, "--json"], ["queues", "--json"])
    assert json.loads(record.stdout)["result"] == 1.0
    assert json.loads(stats.stdout) == [{"queue": "default", **counts()}]


def test_worker_needs_importable_task_modules(cli: Cli) -> None:
    no_tasks, bad_module = cli.many(["worker", "--queues", "default"],
                                    ["worker", "--tasks", "no_such_module", "--queues", "default"])
    assert no_tasks.returncode == EXIT_USAGE
    assert "--tasks" in one_error_line(no_tasks)
    assert bad_module.returncode == EXIT_TASK_IMPORT
    assert "no_such_module" in one_error_line(bad_module)


# --- headers and hooks ----------------------------------------------------------

HOOKED_TASKS = """
import os

from supervisor import Middleware, configure, task


class Stamp(Middleware):
    def after_child_boot(self, worker):
        with open("booted.log", "a") as log:
            log.write(f"{worker.pid} {worker.slot}\\n")

    def before_attempt(self, attempt):
        attempt.state["seen"] = dict(attempt.headers)


configure(middleware=[Stamp()])  # registered in code, by the task module


@task(bind=True)
def headers(self):
    return self.request.headers
"""


def test_enqueue_headers_reach_the_task_and_job_shows_them(
    cli: Cli, start_worker: StartWorker, tmp_path: Path
) -> None:
    write_module(tmp_path, "e2e_hooked", HOOKED_TASKS)
    worker = start_worker(tasks="e2e_hooked", queues="default", cwd=tmp_path)
    done = cli("enqueue", "e2e_hooked.headers", "-H", "tenant=acme", "--header", "trace=a=b",
               "--wait", WAIT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tenant": "acme", "trace": "a=b"}
    job_id = done.stderr.strip()
    shown, as_json, bad = cli.many(["job", job_id], ["job", job_id, "--json"],
                                   ["enqueue", "e2e_hooked.headers", "-H", "novalue"])
    assert "headers  tenant=acme  trace=a=b" in shown.stdout
    assert json.loads(as_json.stdout)["headers"] == {"tenant": "acme", "trace": "a=b"}
    assert bad.returncode == EXIT_USAGE and "give NAME=VALUE" in bad.stderr
    assert worker.stop() == 0
    assert (tmp_path / "booted.log").read_text().split() == [str(worker.process.pid), "0"]


def test_enqueue_priority_puts_the_job_on_its_level_and_queues_counts_every_level(
        cli: Cli) -> None:
    import redis as redis_client

    from supervisor.broker import keys

    low = cli.enqueue("tasks.examples.add", "1", "2", "--queue", "prio")
    urgent, bad = cli.many(["enqueue", "tasks.examples.add", "3", "4", "--queue", "prio",
                            "--priority", "9"],
                           ["enqueue", "tasks.examples.add", "--priority", "12"])
    assert urgent.returncode == 0, urgent.stderr
    assert bad.returncode == EXIT_USAGE
    assert "--priority must be an integer from 0 to 9" in bad.stderr
    client = redis_client.Redis.from_url(cli.redis_url, decode_responses=True)
    assert [json.loads(fields["m"])["id"]
            for _, fields in client.xrange(keys.level_stream("prio", 9))] == [
        urgent.stdout.strip()]
    assert [json.loads(fields["m"])["id"] for _, fields in client.xrange(keys.stream("prio"))] \
        == [low]
    assert cli.stats()["prio"]["waiting"] == 2
