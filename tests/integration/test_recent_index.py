"""The browse index (broker/recent.py): written by settle.lua, trimmed, read without scans."""

from __future__ import annotations

import json
import time

import redis

from supervisor.broker import keys
from supervisor.broker.recent import RECENT_MAX, recent_jobs
from supervisor.broker.streams import Broker, EnqueueRequest, Settlement
from supervisor.core.outcome import Outcome

CONSUMER = "node:1:1"


def _record(job_id: str, task: str, state: str) -> str:
    return json.dumps({"id": job_id, "task": task, "queue": "q", "state": state, "attempt": 1,
                       "created": time.time(), "due": time.time() + 600},
                      separators=(",", ":"))  # compact, as records are written


def _run(broker: Broker, jobs: list[tuple[str, str, str]], queue: str = "q") -> None:
    """Enqueue, fetch and settle (job id, task, kind): kind 'r' succeeded, 'd' dead,
    'n' retry in 10 minutes, 'x' ignore_result."""
    now_ms = int(time.time() * 1000)
    broker.ensure_groups([queue])
    for job_id, task, _ in jobs:
        broker.enqueue(EnqueueRequest(queue, job_id, json.dumps({"id": job_id, "task": task}),
                                      _record(job_id, task, "queued")), now_ms)
    deliveries = broker.fetch(CONSUMER, [queue], len(jobs), None)
    assert len(deliveries) == len(jobs)
    by_id = {json.loads(d.message)["id"]: d for d in deliveries}
    items = []
    for job_id, task, kind in jobs:
        state = {"r": "succeeded", "d": "failed", "n": "retrying", "x": ""}[kind]
        outcome = Outcome(_record(job_id, task, state) if state else "", 600,
                          dead_letter=json.dumps({"id": job_id}) if kind == "d" else "",
                          retry_message=by_id[job_id].message if kind == "n" else "",
                          retry_due_ms=now_ms + 600_000 if kind == "n" else 0)
        items.append(Settlement(by_id[job_id], job_id, outcome))
    assert broker.settle(CONSUMER, items, now_ms) == len(jobs)


def _ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["id"] for row in rows]


def test_each_outcome_lands_in_its_state(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    _run(broker, [("ok-1", "t.add", "r"), ("bad-1", "t.boom", "d"), ("again-1", "t.add", "n"),
                  ("quiet-1", "t.add", "x")])
    assert client.zrange(keys.recent("q", "succeeded"), 0, -1) == ["ok-1"]
    assert client.zrange(keys.recent("q", "failed"), 0, -1) == ["bad-1"]
    assert client.zrange(keys.recent("q", "retrying"), 0, -1) == ["again-1"]
    # The index expires with its records (600 s here), so nothing outlives them.
    assert 590 <= client.ttl(keys.recent("q", "succeeded")) <= 600
    assert _ids(recent_jobs(client, ["q"], "succeeded")) == ["ok-1"]
    assert _ids(recent_jobs(client, ["q"], "failed")) == ["bad-1"]
    assert _ids(recent_jobs(client, ["q"], "retrying")) == ["again-1"]
    assert sorted(_ids(recent_jobs(client, ["q"]))) == ["again-1", "bad-1", "ok-1"]
    assert sorted(_ids(recent_jobs(client, ["q"], task="t.add"))) == ["again-1", "ok-1"]
    assert recent_jobs(client, ["q"], "succeeded", task="t.boom") == []
    # The retry waits in the delayed set: browsing "scheduled" reads it there.
    assert _ids(recent_jobs(client, ["q"], "scheduled")) == ["again-1"]


def test_a_state_filter_follows_the_record(redis_url: str) -> None:
    """A job that retried, then succeeded, is listed as succeeded, not as retrying."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    _run(broker, [("twice", "t.add", "n")])
    client.set(keys.job("q", "twice"), _record("twice", "t.add", "succeeded"))
    client.zadd(keys.recent("q", "succeeded"), {"twice": time.time() * 1000})
    assert recent_jobs(client, ["q"], "retrying") == []
    assert _ids(recent_jobs(client, ["q"], "succeeded")) == ["twice"]
    assert _ids(recent_jobs(client, ["q"])) == ["twice"]  # once, whatever the sets
    client.delete(keys.job("q", "twice"))  # expired: gone from every listing
    assert recent_jobs(client, ["q"]) == []


def test_the_index_keeps_the_newest_recent_max(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    total = RECENT_MAX + 25
    for start in range(0, total, 500):
        _run(broker, [(f"job-{i:05d}", "t.add", "r") for i in range(start, min(start + 500,
                                                                            total))])
    index = keys.recent("q", "succeeded")
    assert client.zcard(index) == RECENT_MAX
    kept = set(client.zrange(index, 0, -1))
    assert f"job-{total - 1:05d}" in kept and "job-00000" not in kept
    newest = recent_jobs(client, ["q"], "succeeded", limit=3)
    assert _ids(newest)[0] in {f"job-{i:05d}" for i in range(total - 500, total)}
    assert len(newest) == 3


def test_unknown_state_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        recent_jobs(client, ["q"], "exploded")
    except ValueError as exc:
        assert "exploded" in str(exc) and "succeeded" in str(exc)
    else:
        raise AssertionError("an unknown state was accepted")



def test_cancelled_jobs_are_browsable_however_they_were_cancelled(redis_url: str) -> None:
    """Cancelled before it started (cancel.lua; its worker then only acknowledges it),
    stopped by its cancel or expired (the worker writes a cancelled record: settle kind
    'r'), asked while it ran and then failed or handed back (settle makes it cancelled):
    each is listed as cancelled, none as succeeded."""
    from supervisor.broker import control

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    now_ms = int(time.time() * 1000)
    broker.ensure_groups(["q"])
    names = ["waiting", "asked", "stopped", "ok"]
    for job_id in names:
        broker.enqueue(EnqueueRequest("q", job_id, json.dumps({"id": job_id, "task": "t.add"}),
                                      _record(job_id, "t.add", "queued"), 0, 600), now_ms)
    assert control.cancel(client, "q", "waiting", by="ops").what == "cancelled"
    assert 590 <= client.ttl(keys.recent("q", "cancelled")) <= 600  # lives with its record
    cancelled_at = client.zscore(keys.recent("q", "cancelled"), "waiting")
    by_id = {json.loads(d.message)["id"]: d for d in broker.fetch(CONSUMER, ["q"], 10, None)}
    broker.mark_taken({"q": {"asked": f"{CONSUMER} {time.time()}"}})  # a worker holds it
    assert control.cancel(client, "q", "asked", by="ops").what == "running"
    outcomes = {"waiting": Outcome("", 600, keep_record=True),
                "asked": Outcome(_record("asked", "t.add", "retrying"), 600,
                                 retry_message=by_id["asked"].message,
                                 retry_due_ms=now_ms + 600_000),
                "stopped": Outcome(_record("stopped", "t.add", "cancelled"), 600),
                "ok": Outcome(_record("ok", "t.add", "succeeded"), 600)}
    assert broker.settle(CONSUMER, [Settlement(by_id[job_id], job_id, outcomes[job_id])
                                    for job_id in names], now_ms) == 4
    assert client.zrange(keys.recent("q", "succeeded"), 0, -1) == ["ok"]
    assert client.zscore(keys.recent("q", "cancelled"), "waiting") == cancelled_at
    assert sorted(_ids(recent_jobs(client, ["q"], "cancelled"))) == ["asked", "stopped",
                                                                     "waiting"]
    assert _ids(recent_jobs(client, ["q"], "succeeded")) == ["ok"]
    assert client.zcard(keys.delayed("q")) == 0  # the cancel stopped the retry
