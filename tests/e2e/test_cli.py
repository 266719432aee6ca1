"""End-to-end tests of the `supervisor` command line, run as real subprocesses.

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
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from redis_server import free_port

from supervisor import __version__
from supervisor.broker import keys
from supervisor.broker.inspect import queue_stats
from supervisor.config import load_config
from supervisor.errors import (
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REDIS_UNAVAILABLE,
    EXIT_TASK_IMPORT,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from supervisor.producer import Producer
from supervisor.result import AsyncResult

ROOT = Path(__file__).resolve().parents[2]
# Bound for one CLI call; the slowest (enqueue against a dead Redis) gives up
# after ~10 s of retries by design.
CLI_TIMEOUT = 30.0
WAIT = "15"  # --wait for a job that a running worker picks up at once

# Task modules the repo does not have, written into tmp_path for a worker.
ECHO_TASKS = """
from supervisor import task


@task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}
"""

LATE_TASKS = """
from supervisor import task


@task
def mul(x, y):
    return x * y
"""


# --- harness ------------------------------------------------------------------


@dataclass
class Cli:
    """Runs the CLI against the private Redis with an explicit environment."""

    redis_url: str
    env: dict[str, str]

    def __call__(self, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        return self.many(args, env=env)[0]

    def many(self, *commands: Sequence[str],
             env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands side by side; each result in order."""
        started = [
            (list(args), subprocess.Popen(
                [sys.executable, "-m", "supervisor", *args], cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for args in commands
        ]
        done = []
        for args, process in started:
            try:
                out, err = process.communicate(timeout=CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise AssertionError(f"{args} did not finish within {CLI_TIMEOUT}s") from None
            done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
        return done

    def ok(self, *args: str) -> str:
        """Run, assert exit 0, return stdout."""
        done = self(*args)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def enqueue(self, *args: str) -> str:
        """`enqueue ARGS`; the job id it printed."""
        job_id = self.ok("enqueue", *args).strip()
        assert job_id and "\n" not in job_id
        return job_id

    def stats(self) -> dict[str, dict[str, Any]]:
        """`queues --json`, keyed by queue name."""
        return {item["queue"]: item for item in self.json("queues")}


def counts(waiting: int = 0, running: int = 0, scheduled: int = 0, dead: int = 0
           ) -> dict[str, int]:
    return {"waiting": waiting, "running": running, "scheduled": scheduled, "dead": dead}


def numbers(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """`queues --json` without the queue names repeated inside."""
    return {name: {k: v for k, v in item.items() if k != "queue"} for name, item in stats.items()}


@dataclass
class Jobs:
    """In-process setup and waiting (not under test): the library's producer."""

    producer: Producer

    def add(self, task: str, *args: Any, queue: str = "default", countdown: float | None = None,
            **kwargs: Any) -> str:
        return self.producer.submit_named(task, queue, args, kwargs, countdown=countdown).id

    def state(self, job_id: str) -> str:
        return AsyncResult[Any](job_id, client=self.producer.client).state

    def stats(self, queue: str) -> dict[str, int]:
        """Queue numbers read in-process, for waiting (assertions use `queues --json`)."""
        return queue_stats(self.producer.client, queue).as_dict()

    def settle(self, *job_ids: str) -> None:
        """Wait until every job has succeeded or failed for good."""
        wait_until(lambda: all(self.state(j) in ("succeeded", "failed") for j in job_ids),
                   timeout=15, what=f"jobs {job_ids} finish")


@dataclass
class WorkerProcess:
    """A foreground `supervisor worker`; its combined output goes to `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (finish the current job and exit); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker ignored SIGTERM for {timeout}s:\n{self.output()}") from None


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def cli(redis_url: str) -> Cli:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SUPERVISOR_")}
    env.update({
        "SUPERVISOR_REDIS_URL": redis_url,
        # Workers run from tmp_path import `supervisor` / `tasks.examples` from here.
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",  # typer's help is not wrapped mid-line
        "NO_COLOR": "1",
        "TERM": "dumb",
    })
    return Cli(redis_url, env)


@pytest.fixture
def jobs(redis_url: str) -> Iterator[Jobs]:
    producer = Producer(load_config({"redis_url": redis_url}))
    yield Jobs(producer)
    producer.client.close()


@pytest.fixture
def start_worker(cli: Cli, tmp_path: Path) -> Iterator[StartWorker]:
    """Start `supervisor worker`; returns once it logs that it is consuming."""
    started: list[WorkerProcess] = []

    def start(tasks: str = "tasks.examples", queues: str = "default,reports",
              cwd: Path = ROOT) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "supervisor", "worker", "--tasks", tasks,
                 "--queues", queues],
                cwd=cwd, env=cli.env, stdout=out, stderr=subprocess.STDOUT,
            )
        handle = WorkerProcess(process, log)
        started.append(handle)

        def consuming() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited ({process.returncode}):\n{handle.output()}")
            return " consuming " in handle.output()

        wait_until(consuming, timeout=15, what="worker says it is consuming")
        return handle

    yield start
    for handle in started:  # a failed test must not leave a worker behind
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait()


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


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """A user error: exactly one `error:` line on stderr, no traceback, nothing on stdout."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "", done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


# --- version and help ---------------------------------------------------------


def test_version(cli: Cli) -> None:
    assert cli.ok("--version") == f"supervisor {__version__}\n"
    script = Path(sys.executable).with_name("supervisor")  # the console script
    if script.exists():
        done = subprocess.run([str(script), "--version"], env=cli.env, capture_output=True,
                              text=True, timeout=CLI_TIMEOUT, check=False)
        assert (done.returncode, done.stdout) == (0, f"supervisor {__version__}\n")


COMMANDS = ["enqueue", "result", "worker", "run", "dead list", "dead show", "dead requeue",
            "dead purge"]


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


def test_same_job_id_twice_is_one_job(cli: Cli, start_worker: StartWorker) -> None:
    assert cli.enqueue("tasks.examples.add", "1", "2", "--job-id", "order-17") == "order-17"
    assert cli.enqueue("tasks.examples.add", "10", "20", "--job-id", "order-17") == "order-17"
    assert numbers(cli.stats()) == {"default": counts(waiting=1)}

    worker = start_worker()
    assert cli.ok("result", "order-17", "--wait", WAIT) == "3\n"  # the first enqueue won
    assert worker.stop() == 0
    assert numbers(cli.stats()) == {"default": counts()}


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
    assert cli.ok("queues").split() == ["queue", "waiting", "running", "scheduled", "dead"]
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
    assert table == [["queue", "waiting", "running", "scheduled", "dead"],
                     ["default", "3", "0", "2", "0"],
                     ["reports", "1", "0", "0", "0"]]

    worker = start_worker()
    rejected = jobs.add("tasks.examples.build_report", "", queue="reports")
    jobs.settle(rejected)
    wait_until(lambda: jobs.stats("default")["waiting"] == 0, timeout=15,
               what="the worker drains default")
    assert worker.stop() == 0
    assert numbers(cli.stats()) == {"default": counts(scheduled=2), "reports": counts(dead=1)}


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
        ["dead", "list"], ["dead", "show", rejected],
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

    assert cli.ok("dead", "purge", "--queue", "reports").strip() == "purged 1 dead letter(s)"
    assert [letter["id"] for letter in cli.json("dead", "list")] == [unknown]
    assert cli.ok("dead", "purge").strip() == "purged 1 dead letter(s)"
    listed, stats = cli.many(["dead", "list"], ["queues", "--json"])
    assert listed.stdout == ""
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
    garbage = f"invalid-{entry}"
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
    assert done.returncode == EXIT_REDIS_UNAVAILABLE
    line = one_error_line(done)
    assert "credentials" in line and "wrong" not in line


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
