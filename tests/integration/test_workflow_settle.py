"""Workflow steps decided inside settle.lua and the all-or-nothing enqueue, on a real
Redis with the broker driven directly (no worker): a settle repeated after a lost reply,
a producer that dies before its commit, a group of 100,000."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import workflow_tasks as wt
from redis.connection import AbstractConnection

from supervisor import chord, group
from supervisor.api.canvas import steps_of
from supervisor.api.flows import STAGE_CHUNK, send
from supervisor.broker import keys
from supervisor.broker.streams import Broker, Settlement
from supervisor.core import canvas, record
from supervisor.core.job import decode
from supervisor.core.outcome import Outcome

CONSUMER = "node:1:1"


def launch(broker: Broker, node: Any, root: str = "wf-1") -> list[dict[str, Any]]:
    steps = steps_of(node, 600)
    for step in steps:
        if "g" in step and not step["home"]:
            step["home"] = "default"
    send(broker, canvas.start(steps, canvas.NO_VALUE, canvas.Context(root, {}, "here"), None),
         root)
    return steps


def succeed(broker: Broker, deliveries: list[Any]) -> list[Settlement]:
    items = []
    for delivery in deliveries:
        job = decode(delivery.message)
        value = sum(job.args[0]) if isinstance(job.args[0], list) else sum(job.args)
        written = record.succeeded(job, value, record.Attempt(CONSUMER, 1.0, 2.0))
        items.append(Settlement(delivery, job.id, Outcome(written, 600)))
    return items


def test_a_settle_repeated_after_a_lost_reply_counts_and_enqueues_nothing_twice(
        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    broker.ensure_groups(["default"])
    steps = launch(broker, chord([wt.add.s(1, 1), wt.add.s(2, 2)], wt.total.s()))
    chord_key = keys.chord("default", steps[0]["id"])
    first = broker.fetch(CONSUMER, ["default"], 10, None)
    assert len(first) == 2
    now = int(time.time() * 1000)
    items = succeed(broker, first[:1])
    assert broker.settle(CONSUMER, items, now) == 1
    assert broker.settle(CONSUMER, items, now) == 0  # the retry: nothing pending, no count
    assert client.hget(chord_key, "left") == "1"
    last = succeed(broker, first[1:])
    assert broker.settle(CONSUMER, last, now) == 1
    assert broker.settle(CONSUMER, last, now) == 0
    callback = broker.fetch(CONSUMER, ["default"], 10, None)
    assert [decode(d.message).id for d in callback] == [steps[1]["id"]]  # enqueued once
    assert broker.fetch(CONSUMER, ["default"], 10, None) == []


class DiesBeforeCommit:
    """A broker whose producer dies (raises) at its first commit."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.died = False

    def remember_queues(self, queues: Any) -> None:
        self.broker.remember_queues(queues)

    def apply_workflow(self, calls: Any, *, wait: bool = False) -> None:
        calls = list(calls)
        if any('"commit"' in text for _, text in calls) and not self.died:
            self.died = True
            raise ConnectionError("producer killed before its commit")
        self.broker.apply_workflow(calls, wait=wait)


def test_a_producer_dying_before_its_commit_leaves_nothing_runnable(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    steps = steps_of(chord([wt.add.s(i, i) for i in range(1200)], wt.total.s()), 600)
    effects = canvas.start(steps, canvas.NO_VALUE, canvas.Context("wf-2", {}, "here"), None)
    dying = DiesBeforeCommit(broker)
    with pytest.raises(ConnectionError):
        send(dying, effects, "wf-2")
    assert client.xlen(keys.stream("default")) == 0  # staged only: nothing runs
    assert not client.exists(keys.chord("default", steps[0]["id"]))  # no chord half-made
    assert client.llen(keys.staged("default", "wf-2")) == 1200
    assert 0 < client.ttl(keys.staged("default", "wf-2")) <= 600  # expires if never retried
    send(dying, effects, "wf-2")  # the producer's retry (same ids)
    assert client.xlen(keys.stream("default")) == 1200  # every member once
    assert client.hget(keys.chord("default", steps[0]["id"]), "left") == "1200"
    assert not client.exists(keys.staged("default", "wf-2"))
    send(dying, effects, "wf-2")  # a retry after a lost commit reply: nothing twice
    assert client.xlen(keys.stream("default")) == 1200


class RoundTrips:
    """Counts this process's round trips to Redis: each time a connection sends after it
    read (or first sends), it waits for a reply once more."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        reading: dict[int, bool] = {}
        send, read = AbstractConnection.send_packed_command, AbstractConnection.read_response

        def counted_send(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if reading.get(id(conn), True):
                self.count += 1
            reading[id(conn)] = False
            return send(conn, *args, **kwargs)

        def counted_read(conn: Any, *args: Any, **kwargs: Any) -> Any:
            reading[id(conn)] = True
            return read(conn, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted_send)
        monkeypatch.setattr(AbstractConnection, "read_response", counted_read)


@pytest.mark.usefixtures("producer")
def test_a_group_of_100000_is_enqueued_in_a_few_round_trips(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the public API, on a server that has no script loaded (NOSCRIPT: loaded
    # and the calls sent again). Staged in chunks (one script call each, so none holds
    # Redis long), all of them pipelined: a few round trips, where one per chunk was
    # ~200.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    group(wt.add.s(0, 0)).delay()  # the producer's connections made (their handshakes)
    client.script_flush()
    client.config_resetstat()
    trips = RoundTrips(monkeypatch)
    handle = group(wt.add.s(i, i) for i in range(100_000)).delay()
    # The staging calls (answered NOSCRIPT), SCRIPT LOAD, the staging calls again, the
    # commit.
    assert trips.count == 4, trips.count
    monkeypatch.undo()
    chunks = -(-100_000 // STAGE_CHUNK)
    calls = client.info("commandstats")["cmdstat_evalsha"]
    # Every chunk and the tree's call sent twice (NOSCRIPT, then again), the commit once.
    assert calls["calls"] == 2 * (chunks + 1) + 1, calls
    assert client.xlen(keys.stream("default")) == 100_001
    last = client.xrevrange(keys.stream("default"), count=1)[0][1]["m"]
    assert json.loads(last)["args"] == [99_999, 99_999]
    assert handle.children[-1].state == "queued"
    assert not client.keys(keys.staged("default", "*"))  # committed: nothing left staged


def test_a_member_run_twice_is_counted_once(redis_url: str) -> None:
    """Two entries of one member (run again after its node was presumed dead, both
    settled): its chord counts it once, and the callback waits for the other member."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    broker.ensure_groups(["default"])
    steps = launch(broker, chord([wt.add.s(1, 1), wt.add.s(2, 2)], wt.total.s()), "wf-3")
    chord_key = keys.chord("default", steps[0]["id"])
    first = broker.fetch(CONSUMER, ["default"], 10, None)
    client.xadd(keys.stream("default"), {"m": first[0].message})  # the same member again
    again = broker.fetch(CONSUMER, ["default"], 10, None)
    now = int(time.time() * 1000)
    assert broker.settle(CONSUMER, succeed(broker, [first[0], *again]), now) == 2
    assert client.hget(chord_key, "left") == "1"
    assert broker.fetch(CONSUMER, ["default"], 10, None) == []  # no callback yet
    broker.settle(CONSUMER, succeed(broker, first[1:]), now)
    [callback] = broker.fetch(CONSUMER, ["default"], 10, None)
    assert decode(callback.message).id == steps[1]["id"]


def forward_to_other(workflow_id: str) -> tuple[canvas.Enqueue, str]:
    """A one-step workflow bound for the other queue, and the forward the default
    queue's settle would write for it (its payload)."""
    from supervisor.broker.workflow import Ops

    steps = steps_of(wt.add_other.s(1, 2), 600)
    [job] = canvas.start(steps, canvas.NO_VALUE, canvas.Context(workflow_id, {}, "here"), None)
    assert isinstance(job, canvas.Enqueue)
    ops = Ops("default", [])
    ops.add(job)  # bound for the other queue: a forward
    [[_, _, payload]] = ops.ops
    return job, payload


def test_a_forward_that_cannot_be_applied_is_set_aside_and_the_rest_go_on(
        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    _, good = forward_to_other("wf-4")
    client.rpush(keys.forward("default"), "not json", '{"k": [], "o": [["enq", 9, 9]]}', good)
    assert broker.forward(["default"]) == 3
    assert client.lrange(keys.forward_failed("default"), 0, -1)[0] == "not json"
    assert client.llen(keys.forward_failed("default")) == 2
    assert not client.exists(keys.forward("default"))
    assert client.xlen(keys.stream(wt.OTHER)) == 1  # the good one, after the bad ones


def test_a_forward_redis_refuses_for_now_stays_listed_and_is_applied_once_it_takes_writes(
        redis_url: str) -> None:
    # Redis full (maxmemory, noeviction) refuses the forward's script: that says nothing
    # of the forward, which must not be set aside (its step would never run).
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    from supervisor.broker.forwarding import forward

    _, payload = forward_to_other("wf-oom")
    client.rpush(keys.forward("default"), payload)

    def filled_up_meanwhile(**call: Any) -> Any:  # memory ran out after the claim
        client.config_set("maxmemory", "1")
        return broker.workflow(**call)

    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            forward(client, filled_up_meanwhile, ["default"])
    finally:
        client.config_set("maxmemory", "0")  # the session's server: give it back
    assert client.lrange(keys.forward("default"), 0, -1) == [payload]
    assert not client.exists(keys.forward_failed("default"))
    assert broker.forward(["default"]) == 1  # at once: its claim was given back
    assert client.xlen(keys.stream(wt.OTHER)) == 1
    assert not [key for key in client.keys("*") if ":forward" in key]


def test_two_workers_reading_one_forward_apply_it_once(redis_url: str) -> None:
    # Every worker of a queue moves its forwards on; two read the same batch. A repeat
    # is a no-op but for a step whose record is gone (ignore_result: it ran and was
    # settled in between): its SET NX passes again. Each forward is applied only by the
    # worker that claimed it, and only while it is still listed.
    from supervisor.broker.forwarding import _claim, _digest

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    first, second = Broker(client), Broker(client)
    job, payload = forward_to_other("wf-5")
    name = keys.forward("default")
    client.rpush(name, payload)
    stale = client.lrange(name, 0, -1)  # what the second worker read before the first ran
    assert _claim(client, "default", name, stale) == [payload]  # the second one claims it
    assert first.forward(["default"]) == 0  # claimed: the first leaves it alone
    client.delete(keys.forward_claim("default", _digest(payload)))  # (the second one died)
    assert first.forward(["default"]) == 1
    assert client.xlen(keys.stream(wt.OTHER)) == 1
    client.delete(keys.job_prefix(wt.OTHER) + job.job_id)  # it ran with ignore_result
    # The second worker wakes with its stale batch: removed meanwhile, not applied again.
    assert _claim(client, "default", name, stale) == []
    assert second.forward(["default"]) == 0
    assert client.xlen(keys.stream(wt.OTHER)) == 1
    assert not [key for key in client.keys("*") if ":forward" in key]  # claims unclaimed


def test_a_forward_applied_by_a_worker_killed_before_removing_it_is_not_applied_again(
        redis_url: str) -> None:
    # The window: a worker applied a forward (the step's job enqueued), then was killed
    # before its LREM. The step ran with ignore_result, so its record is gone; once the
    # claim expired another worker finds the forward still listed. The mark set in the
    # same script as the apply makes that second application a no-op.
    from supervisor.broker.forwarding import FORWARD_DONE_SECONDS, _apply, _digest

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    job, payload = forward_to_other("wf-6")
    name = keys.forward("default")
    client.rpush(name, payload)
    mark = _apply(client, broker.workflow, "default", payload)  # then the worker dies
    assert mark == keys.forward_done(wt.OTHER, _digest(payload))
    assert 0 < client.ttl(mark) <= FORWARD_DONE_SECONDS
    assert client.xlen(keys.stream(wt.OTHER)) == 1
    client.delete(keys.job_prefix(wt.OTHER) + job.job_id)  # it ran with ignore_result
    assert client.llen(name) == 1 and not client.exists(
        keys.forward_claim("default", _digest(payload)))  # its claim expired
    assert broker.forward(["default"]) == 1  # found again, removed...
    assert client.xlen(keys.stream(wt.OTHER)) == 1  # ...but its job not enqueued twice
    assert not [key for key in client.keys("*") if ":forward" in key]  # mark removed too


def test_a_member_run_twice_ends_its_branch_once(redis_url: str) -> None:
    """A trailing group's member settled twice (run again after its node was presumed
    dead) counts its branch once: the workflow is still running until the other ends."""
    from supervisor.api.workflowview import tree_of

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = Broker(client)
    broker.ensure_groups(["default"])
    steps = steps_of(group(wt.add.s(1, 1), wt.add.s(2, 2)), 600)
    root = steps[0]["id"]
    effects = canvas.start(steps, canvas.NO_VALUE,
                           canvas.Context(root, {}, "here", "default"), None)
    send(broker, effects, root, ("default", root, tree_of(steps), 600, canvas.ends(steps)))
    running, succeeded = (keys.workflows("default", state) for state in ("running", "succeeded"))
    assert client.zrange(running, 0, -1) == [root]
    first = broker.fetch(CONSUMER, ["default"], 10, None)
    client.xadd(keys.stream("default"), {"m": first[0].message})  # the same member again
    again = broker.fetch(CONSUMER, ["default"], 10, None)
    now = int(time.time() * 1000)
    assert broker.settle(CONSUMER, succeed(broker, [first[0], *again]), now) == 2
    assert client.hget(keys.workflow_ends("default", root), "left") == "1"
    assert client.zrange(running, 0, -1) == [root]  # not finished by the repeat
    broker.settle(CONSUMER, succeed(broker, first[1:]), now)
    assert client.hget(keys.workflow_ends("default", root), "left") == "0"
    assert (client.zrange(running, 0, -1), client.zrange(succeeded, 0, -1)) == ([], [root])
    assert 0 < client.pttl(succeeded) <= 601_000
