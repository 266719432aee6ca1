"""Pure decisions behind issue 12's bad-input items: give-back bounds, what a dead letter
keeps of a message, how a retry's failure is said, a given-back job's message."""

from __future__ import annotations

import json

from supervisor.core import outcome, record
from supervisor.core.job import Job, decode
from supervisor.errors import Retry
from supervisor.worker.runner import describe_failure


def test_a_job_of_an_unknown_task_is_given_back_for_a_bounded_window() -> None:
    job = Job(id="j", task="gone.task", queue="q")
    now, waits = 100.0, []
    while True:
        attempt = record.Attempt("node/1/1.00", now, now)
        passed = outcome.given_back(job, "task 'gone.task' is not registered", 60, attempt,
                                    window=30.0)
        if passed is None:
            break
        assert passed.retry_message and json.loads(passed.record)["state"] == record.RETRYING
        waits.append(passed.retry_due_ms / 1000 - now)
        now = passed.retry_due_ms / 1000
        job = decode(passed.retry_message)
        assert job.attempt == 1 and job.given_back_at == 100.0  # no attempt used up
    assert now - 100.0 >= 30.0 and len(waits) >= 15  # offered often within the window
    assert max(waits) <= outcome.GIVE_BACK_WAIT_MAX and waits == sorted(waits)
    # One entry in the history (when it began), the count in the message.
    assert [entry["outcome"] for entry in job.history] == [record.ATTEMPT_GIVEN_BACK]
    assert job.given_back == len(waits)
    assert outcome.given_back(Job(id="k", task="t", queue="q"), "unknown", 60,
                              record.Attempt("w", 1.0, 1.0), window=0) is None  # at once


def test_given_back_is_absent_from_the_message_until_it_happens() -> None:
    assert "given_back" not in Job(id="j", task="t", queue="q").encode()
    back = decode(Job(id="j", task="t", queue="q", given_back=2, given_back_at=5.0).encode())
    assert (back.given_back, back.given_back_at) == (2, 5.0)


def test_a_dead_letter_keeps_bad_bytes_readable_and_large_messages_cut() -> None:
    undecodable = b"\xff\xfeabc".decode("utf-8", "surrogateescape")
    assert record.kept_message(undecodable, 100) == "\\xff\\xfeabc"
    kept = record.kept_message("x" * 1000, 10)
    assert kept.startswith("x" * 10) and "990 more characters not kept" in kept
    assert record.kept_message("plain", 100) == "plain"


def test_a_retry_is_described_by_its_cause() -> None:
    cause = RuntimeError("simulated failure")
    assert describe_failure(Retry(delay=5, exc=cause)) == \
        "RuntimeError: simulated failure (retry requested in 5s)"
    assert describe_failure(Retry()) == "retry requested"
    assert describe_failure(SystemExit(3)) == "SystemExit: 3"


def test_an_interrupted_or_orphaned_attempt_is_kept_in_the_history() -> None:
    job = Job(id="j", task="t", queue="q", attempt=2)
    entry = record.cut_short(2, "node/7/1.00", 10.0, 12.0, record.ATTEMPT_INTERRUPTED,
                             "a quick stop cut it short")
    back = decode(job.after_interruption(entry).encode())
    assert back.attempt == 2 and back.crashes == 0 and back.history[-1] == entry
    died = job.after_crash(record.cut_short(2, "node/8/1.00", None, 13.0,
                                            record.ATTEMPT_WORKER_DIED, "worker died"))
    assert died.crashes == 1 and "started" not in died.history[-1]
    written = json.loads(record.requeued(died))
    assert written["state"] == record.QUEUED and written["attempts"][-1]["outcome"] == \
        record.ATTEMPT_WORKER_DIED
