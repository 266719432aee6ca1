"""A worker reading several queues runs every job of every queue exactly once.

Regression: stream entry ids are unique only within one stream. Jobs added to
two queues in one `enqueue_many` call get equal entry ids (same millisecond,
same sequence), and a worker that keyed its batch by entry id alone ran one
queue's job in place of the other's (1,983 of 4,000 jobs lost, as many run
twice).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
import sample_tasks
from helpers import wait_until

from supervisor import enqueue_many
from supervisor.broker import keys

pytestmark = pytest.mark.usefixtures("producer")

PAIRS = 400


def test_one_worker_two_queues_jobs_enqueued_in_the_same_call(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    start_worker(queues="qa,qb")
    results = []
    for _ in range(PAIRS):
        results += enqueue_many([sample_tasks.count_run_qa.s(), sample_tasks.count_run_qb.s()])
    ids = [result.id for result in results]

    def drained() -> bool:  # settled entries are deleted from their stream
        return client.xlen(keys.stream("qa")) == 0 and client.xlen(keys.stream("qb")) == 0

    wait_until(drained, timeout=60, what="both queues drained")
    runs = {job_id: int(count) for job_id, count in client.hgetall("t:runs").items()}
    assert sorted(runs) == sorted(ids), "some jobs never ran"
    assert set(runs.values()) == {1}, "some jobs ran twice"
    assert [result.get(timeout=5) for result in results] == ["qa", "qb"] * PAIRS
