"""The pure parts of job control: expiry in the message, the cancelled record, the error
`get()` raises, and the timeline of a cancelled job."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from supervisor.api.producer import _expires_at
from supervisor.core import record
from supervisor.core.job import Job, decode
from supervisor.core.record import JobRecord
from supervisor.core.timeline import timeline
from supervisor.errors import JobCancelled


def test_expiry_travels_in_the_message_and_is_absent_by_default() -> None:
    job = Job(id="j", task="t", queue="q", expires=1234.5)
    assert decode(job.encode()).expires == 1234.5
    plain = Job(id="j", task="t", queue="q").encode()
    assert "expires" not in json.loads(plain)
    assert decode(plain).expires == 0.0


def test_expires_counts_from_the_due_time_or_is_an_aware_datetime() -> None:
    assert _expires_at(None, 0) == 0.0
    assert _expires_at(10, 5_000_000) == pytest.approx(5_010.0)
    assert time.time() + 9 < _expires_at(10, 0) <= time.time() + 10
    when = datetime.now(UTC) + timedelta(minutes=1)
    assert _expires_at(when, 0) == when.timestamp()
    for bad in (0, -1, "soon", True):
        with pytest.raises(ValueError, match="expires must be"):
            _expires_at(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        _expires_at(datetime.now(), 0)  # noqa: DTZ005 - naive on purpose


def test_a_cancelled_record_is_final_and_get_names_who_and_when() -> None:
    job = Job(id="j1", task="t", queue="q")
    at = datetime(2026, 12, 2, 2, 8, 22, tzinfo=UTC).timestamp()
    read = JobRecord.read(record.cancelled(job, "alice@web-1", at, record.CANCEL_REQUESTED),
                          "w1 1.0", time.time())  # held: still cancelled (final)
    assert read.state == "cancelled"
    error = read.job_cancelled("j1")
    assert isinstance(error, JobCancelled)
    assert (error.by, error.at, error.reason) == ("alice@web-1", at, "requested")
    assert str(error) == "job j1 was cancelled by alice@web-1 at 2026-12-02 02:08:22 UTC"
    expired = JobRecord.read(record.cancelled(job, "", at, record.CANCEL_EXPIRED), None, at)
    assert "expired" in str(expired.job_cancelled("j1"))


def test_the_timeline_shows_a_late_cancel_request_and_who_cancelled() -> None:
    job = Job(id="j1", task="t", queue="q", created=100.0)
    entry = {"attempt": 1, "worker": "n:1:abc", "started": 101.0, "finished": 103.0,
             "outcome": record.ATTEMPT_CANCELLED}
    stopped = JobRecord.read(record.cancelled(job, "bob", 102.0, record.CANCEL_REQUESTED,
                                              entry), None, 200.0)
    events = timeline(stopped)
    assert [e["event"] for e in events] == ["enqueued", "started", "cancelled", "cancelled"]
    assert events[-1]["by"] == "bob" and events[-1]["reason"] == "requested"
    won = json.loads(record.succeeded(job, 5, record.Attempt("n:1:abc", 101.0, 103.0)))
    won["cancel_requested"] = {"by": "carol", "at": 102.5, "reason": "requested"}
    events = timeline(JobRecord.read(json.dumps(won), None, 200.0))
    assert [e["event"] for e in events] == ["enqueued", "started", "cancel requested",
                                            "succeeded", "succeeded"]
