"""Error reporting on a real worker: what ReportErrors sends, and what it leaves alone."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable

import pytest
import redis
import reporting_tasks as rt
from helpers import wait_until

from supervisor import JobCancelled

pytestmark = pytest.mark.usefixtures("producer")

Master = Callable[..., subprocess.Popen[bytes]]


def test_a_cancelled_running_job_is_not_reported_as_an_error(
        start_master: Master, redis_url: str) -> None:
    """A cancel is an operator's decision, not an error: ReportErrors sends failed attempts
    (outcomes retry / failed) only, not the JobCancelled of a job stopped by its cancel."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    node = start_master("--workers", "1", "--concurrency", "2", "--middleware",
                        "reporting_tasks:Reported", tasks="reporting_tasks")
    doomed = rt.wait_for_cancel.delay(60)
    wait_until(lambda: client.get(f"t:started:{doomed.id}"), timeout=30,
               what="the job running")
    assert doomed.cancel(by="tester").what == "running"
    with pytest.raises(JobCancelled):
        doomed.get(timeout=15)
    assert doomed.info()["attempts"][-1]["outcome"] == "cancelled"
    # A failure after it, on the same worker: once it is reported, the cancel's attempt
    # (settled before it) would have been reported too.
    failed = rt.broken.delay()
    with pytest.raises(Exception, match="broken on purpose"):
        failed.get(timeout=15)
    wait_until(lambda: client.llen(rt.REPORTED) > 0, timeout=10, what="the failure reported")
    reported = [json.loads(item) for item in client.lrange(rt.REPORTED, 0, -1)]
    assert reported == [{"error": "LookupError", "job_id": failed.id, "outcome": "failed"}]
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=30) == 0
