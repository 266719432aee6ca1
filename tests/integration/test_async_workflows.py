"""Workflows started from asyncio code, against a real worker and a real Redis.

`await chain(...).adelay()`, `await group(...).aapply_async(headers=...)`,
`await chord(header, callback).adelay()`, `await (a.s() | b.s()).adelay()`, and
`await handle.aget(timeout=...)` on their handles: the same results and errors
as delay() and get(), from inside a running event loop that nothing blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
import workflow_tasks as wt

import supervisor
from supervisor import EnqueueInfo, Middleware, TaskFailed, chain, chord, configure, group
from supervisor.api.flows import GroupResult, StepResult
from supervisor.broker import keys
from supervisor.errors import BrokerUnavailable

pytestmark = pytest.mark.usefixtures("producer")
BOTH = f"default,{wt.OTHER}"


class Ticker:
    """Counts the ticks of a coroutine that sleeps 10 ms at a time, all along: were the
    loop blocked (a sync call to Redis, time.sleep), the ticks would stop meanwhile."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    def start(self) -> Ticker:
        self.task = asyncio.create_task(self._beat())
        return self

    def stop(self) -> int:
        assert self.task is not None
        self.task.cancel()
        return self.ticks


def test_a_chain_a_group_of_1000_and_a_chord_from_a_running_event_loop(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="4")
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    async def main() -> dict[str, Any]:
        ticker = Ticker().start()
        piped = await (wt.add.s(2, 2) | wt.add.s(4) | wt.add_other.s(8)).adelay()
        chained = await chain(wt.add.s(1, 1), wt.constant.si(), wt.add.si(3, 3)).adelay()
        many = await group(wt.add.s(i, i) for i in range(1000)).adelay()
        chorded = await chord((wt.add.s(i, 1) for i in range(100)),
                              wt.counted_total.s("async-runs")).adelay()
        crossing = await chord([wt.add.s(1, 1), wt.add_other.s(2, 2)], wt.total.s()).adelay()
        started = ticker.ticks
        results = {
            "piped": await piped.aget(timeout=30),
            "piped_parent": await piped.parent.aget(timeout=5),
            "chained": await chained.aget(timeout=30),
            "many": await many.aget(timeout=60),
            "chorded": await chorded.aget(timeout=60),
            "members": await chorded.parent.aget(timeout=5),
            "crossing": await crossing.aget(timeout=30),
            "handles": (piped, many, chorded),
        }
        results["ticks"] = ticker.stop() - started  # ticked while the results were awaited
        return results

    results = asyncio.run(main())
    assert results["piped"] == 16 and results["piped_parent"] == 8
    assert results["chained"] == 6
    assert results["many"] == [2 * i for i in range(1000)]  # in order
    assert results["chorded"] == sum(range(1, 101))
    assert results["members"] == list(range(1, 101))
    assert client.get("async-runs") == "1"  # the callback ran once
    assert results["crossing"] == 6
    assert results["ticks"] > 0
    piped, many, chorded = results["handles"]
    assert isinstance(piped, StepResult) and isinstance(many, GroupResult)
    assert piped.parent.parent.children == [piped.parent]
    assert many.workflow_id == many.id  # a workflow that is a group takes its id
    assert isinstance(chorded.parent, GroupResult) and len(chorded.parent.children) == 100
    # The sync API reads the same handles.
    assert piped.get(timeout=5) == 16 and chorded.info()["state"] == "succeeded"
    assert client.sismember(keys.QUEUES, wt.OTHER)  # every queue of the workflow is known


def test_a_failing_member_fails_its_chord_and_stops_its_chain_through_aget(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    async def main() -> None:
        stopped = await (wt.add.s(1, 1) | wt.always_fails.s() | wt.add.s(1)).adelay()
        # Its last step is never made: aget finds that the chain stopped at its parent.
        with pytest.raises(TaskFailed, match="no good: 2"):
            await stopped.aget(timeout=20)
        failed = await chord([wt.add.s(1, 1), wt.always_fails.s(7)], wt.total.s()).adelay()
        with pytest.raises(TaskFailed, match="no good: 7") as raised:
            await failed.aget(timeout=20)
        assert "ChordFailed" in str(raised.value)
        assert (await failed.ainfo())["chord_failed"]["job_id"] == failed.parent.children[1].id
        with pytest.raises(TaskFailed, match="no good: 7"):
            await failed.parent.aget(timeout=5)  # the group: its failed member's error
        anyway = await chord([wt.add.s(1, 1), wt.always_fails.s(7)], wt.collect.s(),
                             on_failure="run").adelay()
        values = await anyway.aget(timeout=20)
        assert values[0] == 2 and values[1]["__failed__"] is True
        slow = await chain(wt.wait_for.si("wf:async-go"), wt.add.si(1, 1)).adelay()
        with pytest.raises(TimeoutError, match="its parent has not finished"):
            await slow.aget(timeout=0.3)
        client.set("wf:async-go", "1")  # released: the chain goes on
        assert await slow.aget(timeout=20) == 2

    asyncio.run(main())


class Tenant(Middleware):
    """A producer hook: every job carries its tenant."""

    def before_enqueue(self, job: EnqueueInfo) -> None:
        job.headers["tenant"] = "acme"


def test_headers_and_hooks_travel_into_every_step_of_an_async_workflow(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    configure(redis_url=redis_url, middleware=[Tenant()])

    async def main() -> tuple[Any, Any, Any]:
        second = await (wt.add.s(1, 1) | wt.my_headers.s()).aapply_async(headers={"req": "r1"})
        callback = await chord([wt.add.s(1, 1), wt.add_other.s(1, 1)],
                               wt.my_headers.s()).adelay()
        members = await group(wt.my_headers.s(), wt.add.s(1, 1)).aapply_async(
            headers={"req": "g"})
        return (await second.aget(timeout=20), await callback.aget(timeout=20),
                await members.aget(timeout=20))

    try:
        second, callback, members = asyncio.run(main())
    finally:
        configure(middleware=[])
    assert second == {"tenant": "acme", "req": "r1"}
    assert callback == {"tenant": "acme"}
    assert members == [{"tenant": "acme", "req": "g"}, 2]


def test_a_server_that_lost_the_script_gets_it_again(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    async def main() -> Any:
        first = await group(wt.add.s(0, 0)).adelay()  # the script loaded, the queues known
        await first.aget(timeout=20)
        client.script_flush()  # a restarted or flushed server: NOSCRIPT, loaded, sent again
        handle = await chord([wt.add.s(i, i) for i in range(1200)], wt.total.s()).adelay()
        return await handle.aget(timeout=60)

    assert asyncio.run(main()) == sum(2 * i for i in range(1200))
    assert not client.keys(keys.staged("default", "*"))  # committed: nothing left staged


def test_an_async_workflow_says_redis_is_away_after_the_producers_retry_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import supervisor.api.aproducer as aproducer

    monkeypatch.setattr(aproducer, "ENQUEUE_RETRY_SECONDS", 0.3)
    supervisor.configure(redis_url="redis://127.0.0.1:1/0")  # nothing listens there

    async def main() -> None:
        await chain(wt.add.s(1, 1), wt.add.s(2)).adelay()

    with pytest.raises(BrokerUnavailable, match="cannot reach Redis"):
        asyncio.run(main())
