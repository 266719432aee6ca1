"""Bad input never stops a queue and loses nothing (issue 12, items 1, 2, 7, 14, 15, 16).

Against a real worker process: an entry whose bytes are not UTF-8, a task
raising SystemExit or KeyboardInterrupt, a message and a result over their
size limits, a job of a task the worker does not know, a retry's cause in
the log, and attempts cut short (a quick stop, a SIGKILL) kept in the
job's timeline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import sample_tasks
from helpers import wait_until

from supervisor import TaskFailed
from supervisor.api.result import AsyncResult
from supervisor.broker import keys
from supervisor.core import record
from supervisor.core.job import Job, new_job_id

pytestmark = pytest.mark.usefixtures("producer")
StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return tmp_path / "notes.txt"


def noted(notes: Path) -> list[str]:
    return notes.read_text().split() if notes.exists() else []


def dead_letters(client: redis.Redis, queue: str = "default") -> list[dict[str, Any]]:
    return [json.loads(fields["m"]) for _, fields in client.xrange(keys.dead(queue))]


def test_an_entry_that_is_not_utf8_is_dead_lettered_and_the_rest_flows(
        start_worker: StartWorker, client: redis.Redis, redis_url: str, notes: Path) -> None:
    raw = redis.Redis.from_url(redis_url)  # bytes in, as another client might write them
    raw.xgroup_create(keys.stream("default"), keys.GROUP, id="0", mkstream=True)
    raw.xadd(keys.stream("default"), {"m": b"\xff\xfe{\"id\": \"x\"}"})
    ids = [sample_tasks.noted.delay().id for _ in range(20)]
    worker = start_worker(T_NOTES=str(notes))
    wait_until(lambda: len(noted(notes)) == len(ids), timeout=30, what="every good job ran")
    assert sorted(noted(notes)) == sorted(ids)
    wait_until(lambda: dead_letters(client), what="the bad entry dead-lettered")
    (letter,) = dead_letters(client)
    assert letter["reason"] == "invalid" and "not valid JSON" in letter["message"]
    assert letter["job"].startswith("\\xff\\xfe{"), letter["job"]  # kept, readable
    assert worker.poll() is None, "the worker must not die of one bad entry"


@pytest.mark.parametrize("task", [sample_tasks.exits, sample_tasks.interrupts])
def test_a_task_raising_a_base_exception_fails_its_attempt(
        start_worker: StartWorker, notes: Path, task: Any) -> None:
    worker = start_worker(T_NOTES=str(notes))
    bad = task.delay()
    good = sample_tasks.noted.delay()
    with pytest.raises(TaskFailed) as failed:
        bad.get(timeout=20)
    assert failed.value.exc_type in ("SystemExit", "KeyboardInterrupt")
    assert good.get(timeout=20) == "noted"
    assert noted(notes).count(bad.id) == 1, "ran once: not retried forever"
    assert worker.poll() is None, "the task's exception must not end the worker"


def test_a_message_over_max_payload_bytes_is_dead_lettered_without_keeping_it_whole(
        start_worker: StartWorker, client: redis.Redis, notes: Path) -> None:
    limit = 4096
    job = Job(id=new_job_id(), task=sample_tasks.noted.name, queue="default",
              args=("x" * (3 * limit),))
    client.xgroup_create(keys.stream("default"), keys.GROUP, id="0", mkstream=True)
    client.xadd(keys.stream("default"), {"m": job.encode()})
    worker = start_worker(T_NOTES=str(notes), SUPERVISOR_MAX_PAYLOAD_BYTES=str(limit))
    wait_until(lambda: dead_letters(client), what="the large message dead-lettered")
    (letter,) = dead_letters(client)
    assert letter["reason"] == "invalid" and "max_payload_bytes" in letter["message"]
    assert letter["id"] == job.id and len(letter["job"]) < 2 * limit
    assert noted(notes) == [], "it never ran"
    assert worker.poll() is None


def test_a_result_over_max_result_bytes_fails_the_job_clearly(
        start_worker: StartWorker) -> None:
    start_worker(SUPERVISOR_MAX_RESULT_BYTES="10000")
    with pytest.raises(TaskFailed) as failed:
        sample_tasks.big_result.delay(50_000).get(timeout=20)
    assert failed.value.exc_type == "ResultTooLarge"
    assert "max_result_bytes" in failed.value.message
    assert sample_tasks.big_result.delay(100).get(timeout=20) == "x" * 100


def test_a_job_of_a_task_the_worker_does_not_know_waits_for_one_that_does(
        start_worker: StartWorker, client: redis.Redis, notes: Path, tmp_path: Path) -> None:
    (tmp_path / "other_tasks.py").write_text("from supervisor import task\n\n"
                                             "@task\ndef other() -> None: ...\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", ""),
                            str(Path(sample_tasks.__file__).parent)])
    logs = [tmp_path / "unaware.log", tmp_path / "aware.log"]
    unaware = start_worker(tasks="other_tasks", PYTHONPATH=path, T_NOTES=str(notes),
                           SUPERVISOR_LOG_FILE=str(logs[0]))
    results = [sample_tasks.noted.delay() for _ in range(5)]
    wait_until(lambda: "given back" in json.dumps(results[0].info()), timeout=20,
               what="the unaware worker gave a job back")
    aware = start_worker(T_NOTES=str(notes), SUPERVISOR_LOG_FILE=str(logs[1]))
    try:
        assert [result.get(timeout=40) for result in results] == ["noted"] * 5
    except Exception as exc:
        raise AssertionError("\n".join(log.read_text()[-3000:] for log in logs)) from exc
    assert sorted(noted(notes)) == sorted(result.id for result in results)
    assert dead_letters(client) == []
    outcomes = [entry.get("outcome") for entry in results[0].info()["attempts"]]
    assert outcomes[-1] == "succeeded" and record.ATTEMPT_GIVEN_BACK in outcomes
    assert unaware.poll() is None and aware.poll() is None


def test_a_job_given_back_for_its_whole_window_is_dead_lettered(
        start_worker: StartWorker, client: redis.Redis) -> None:
    # Given back 7 times, the first 120 s ago: past the default window of 60 s.
    job = Job(id=new_job_id(), task="nobody.knows", queue="default", given_back=7,
              given_back_at=time.time() - 120)
    client.xgroup_create(keys.stream("default"), keys.GROUP, id="0", mkstream=True)
    client.xadd(keys.stream("default"), {"m": job.encode()})
    start_worker()
    wait_until(lambda: dead_letters(client), what="dead-lettered")
    (letter,) = dead_letters(client)
    assert letter["reason"] == "invalid" and "given back 7 times over 12" in \
        letter["message"], letter["message"]


def test_the_retry_log_line_names_the_cause_not_the_retry(
        start_worker: StartWorker, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    start_worker(SUPERVISOR_LOG_FILE=str(log))
    assert sample_tasks.fails_once_with_cause.delay().get(timeout=20) == 2
    text = log.read_text()
    assert "RuntimeError: simulated failure (retry requested in 0.1s)" in text, text
    assert "Retry: retry requested" not in text


def test_a_local_call_raises_what_the_task_raised() -> None:
    with pytest.raises(RuntimeError, match="simulated failure"):
        sample_tasks.fails_once_with_cause()


def test_a_quick_stop_keeps_the_interrupted_attempt_in_the_timeline(
        start_worker: StartWorker, client: redis.Redis) -> None:
    result = sample_tasks.slow.delay(30)
    worker = start_worker()
    wait_until(lambda: client.exists(f"t:starts:{result.id}"), what="the job started")
    worker.send_signal(signal.SIGINT)  # Ctrl-C: a quick stop
    assert worker.wait(timeout=15) == 0
    record_ = AsyncResult(result.id, client=client).info()
    assert record_["state"] == "queued"
    (entry,) = record_["attempts"]
    assert entry["outcome"] == record.ATTEMPT_INTERRUPTED and entry["attempt"] == 1
    assert entry["started"] <= entry["finished"] and "quick stop" in entry["message"]


def test_a_killed_worker_s_attempt_stays_in_the_timeline(
        start_worker: StartWorker, client: redis.Redis) -> None:
    result = sample_tasks.slow.delay(1.0)
    victim = start_worker()
    wait_until(lambda: client.exists(f"t:starts:{result.id}"), what="the job started")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    start_worker()  # same node: it sees the dead consumer's process gone and recovers
    assert result.get(timeout=20) == "done"
    outcomes = [entry["outcome"] for entry in result.info()["attempts"]]
    assert outcomes == [record.ATTEMPT_WORKER_DIED, "succeeded"], outcomes
