"""api/canvas.py: `await workflow.adelay()` sends exactly what `workflow.delay()` sends.

One builder (canvas.prepare, flows.sending), two senders: with the job ids and the
clock made the same, the sync and the async path hand their brokers the same
queues and the same workflow.lua calls, in the same rounds, with the same
--wait-replicas flags, and return handles on the same jobs.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import pytest

import supervisor.api.aproducer as aproducer
import supervisor.api.canvas as api_canvas
import supervisor.api.producer as producer
from supervisor import EnqueueInfo, Middleware, chain, chord, group, task
from supervisor.api.flows import STAGE_CHUNK, GroupResult, StepResult
from supervisor.core.middleware import Hooks

OTHER = "unit-other"


@task
def add(x: int, y: int) -> int:
    return x + y


@task(queue=OTHER)
def add_other(x: int, y: int) -> int:
    return x + y


@task
def total(values: list[int]) -> int:
    return sum(values)


class Tenant(Middleware):
    def before_enqueue(self, job: EnqueueInfo) -> None:
        job.headers["tenant"] = "acme"


# A job's creation time is read from the clock as it is built: the same in both logs.
_CREATED = re.compile(r'(created\\*":)[0-9.e+-]+')


class Log:
    """What a broker was asked to write, in order."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    def queues(self, queues: Iterable[str]) -> None:
        self.entries.append(("remember", sorted(queues)))

    def calls(self, calls: Iterable[tuple[list[str], str]], wait: bool) -> None:
        self.entries.append(("apply", [(list(names), _CREATED.sub(r"\g<1>0", text))
                                       for names, text in calls], wait))


class SyncBroker(Log):
    def remember_queues(self, queues: Iterable[str]) -> None:
        self.queues(queues)

    def apply_workflow(self, calls: Iterable[tuple[list[str], str]], *,
                       wait: bool = False) -> None:
        self.calls(calls, wait)


class AsyncBroker(Log):
    async def remember_queues(self, queues: Iterable[str]) -> None:
        self.queues(queues)

    async def apply_workflow(self, calls: Iterable[tuple[list[str], str]], *,
                             wait: bool = False) -> None:
        self.calls(calls, wait)


class Producer:
    """What launch/alaunch use of a producer: its settings, hooks, host, broker, retry."""

    def __init__(self, broker: Log) -> None:
        self.config = SimpleNamespace(result_ttl=600)
        self.hooks = Hooks((Tenant(),))
        self.host = "here"
        self.broker = broker
        self.client = self.aclient = object()
        self.tries: list[str] = []


class SyncProducer(Producer):
    def _retrying(self, call: Callable[[], Any], lost: str) -> Any:
        self.tries.append(lost)
        return call()


class AsyncProducer(Producer):
    async def _retrying(self, call: Callable[[], Any], lost: str) -> Any:
        self.tries.append(lost)
        return await call()


def _same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job ids and the workflow id counted from 0 again (each path draws them in turn)."""
    ids = itertools.count()
    monkeypatch.setattr(api_canvas, "new_job_id", lambda: f"job{next(ids)}")
    monkeypatch.setattr(api_canvas.uuid, "uuid4", lambda: SimpleNamespace(hex="wf-root"))


def _ids(handle: Any) -> list[Any]:
    """The handle's jobs, from the last step back through its parents and members."""
    found: list[Any] = []
    while handle is not None:
        if isinstance(handle, GroupResult):
            found.append([_ids(child) for child in handle.children])
        else:
            found.append((handle.id, handle.queue, handle.workflow_id))
        handle = handle.parent
    return found


WORKFLOWS: dict[str, Callable[[], Any]] = {
    "chain across queues": lambda: add.s(1, 1) | add_other.s(2) | add.si(3, 3),
    "group of two chunks": lambda: group(add.s(i, i) for i in range(STAGE_CHUNK + 7)),
    "chord across queues": lambda: chord([add.s(1, 1), add_other.s(2, 2)], total.s()),
    "chord then a step": lambda: chord([add.s(1, 1), chain(add.s(2, 2), add.s(1))],
                                       total.s()) | add.s(10),
}


@pytest.mark.parametrize("name", list(WORKFLOWS))
def test_the_sync_and_the_async_path_send_the_same_calls(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = SyncProducer(SyncBroker())
    monkeypatch.setattr(producer, "current_producer", lambda: sync)
    _same_ids(monkeypatch)
    sync_handle = WORKFLOWS[name]().apply_async(headers={"req": "r1"})

    made = AsyncProducer(AsyncBroker())
    monkeypatch.setattr(aproducer, "current_async_producer", lambda: made)
    _same_ids(monkeypatch)

    async def main() -> Any:
        return await WORKFLOWS[name]().aapply_async(headers={"req": "r1"})

    async_handle = asyncio.run(main())

    assert made.broker.entries == sync.broker.entries
    assert made.tries == sync.tries == [api_canvas.LOST]  # each sent in its retry window
    # Not vacuous: the queues, the tree, the staging, the opens and the commits (waited
    # for with --wait-replicas), with the caller's and the hook's headers in the jobs.
    remember, staging, opens, commits = sync.broker.entries
    assert remember[0] == "remember" and "default" in remember[1]
    assert [entry[2] for entry in (staging, opens, commits)] == [False, False, True]
    assert '"wf"' in staging[1][0][1] and any("commit" in text for _, text in commits[1])
    assert '\\"tenant\\":\\"acme\\"' in staging[1][1][1]
    assert '\\"req\\":\\"r1\\"' in staging[1][1][1]
    assert _ids(async_handle) == _ids(sync_handle)
    last = async_handle if isinstance(async_handle, StepResult) else async_handle.children[0]
    assert last._aclient is made.client  # aget() reads on the async producer's client
