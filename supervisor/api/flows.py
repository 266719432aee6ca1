"""Workflows sent to Redis and their handles (api/canvas.py compiles them).

`send` (`asend` from asyncio code: the same calls, built once by `sending`)
writes a workflow's first jobs all or nothing per queue, in two or three
pipelined round trips whatever their number: first the tree and every queue's
staging calls (records written, messages in a staged list: nothing runnable, in
chunks of STAGE_CHUNK jobs so that no one script holds Redis for long), then the
commits (workflow.lua) that open the chords and add every staged message to its
stream at once; when the jobs span several queues, every chord is opened in a
round trip before the commits, so a chord exists before any member can report to
it. A producer that dies before the commits leaves nothing runnable (the staged
lists and records expire with the result TTL); a retried send adds nothing twice
(the tree and records SET NX; a commit empties its list).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from supervisor.api.result import AsyncResult
from supervisor.broker import keys
from supervisor.broker.workflow import Ops, tree_call
from supervisor.core import jsonio
from supervisor.core.canvas import Effect, Enqueue, OpenChord
from supervisor.core.priority import level_of
from supervisor.core.record import SUCCEEDED
from supervisor.errors import JobNotFound

STAGE_CHUNK = 500  # jobs per staging call (all of them sent in one round trip)

Calls = list[tuple[list[str], str]]
Tree = tuple[str, str, Any, int, int]  # (queue, root, tree, ttl, ends): see send()


class Sending(NamedTuple):
    """What sending a workflow's first jobs writes, in order: the queues to register, then
    rounds of workflow.lua calls, each (calls, whether --wait-replicas waits behind them),
    a round sent only once the one before was answered. One builder, two senders: send()
    on the sync Broker, asend() on the async one."""

    queues: set[str]
    rounds: list[tuple[Iterable[tuple[list[str], str]], bool]]


def sending(effects: list[Effect], root: str, tree: Tree | None = None,
            queues: Iterable[str] = (), due_ms: int = 0) -> Sending:
    """Stage every first job in its queue, then commit every queue (chords first when
    there are several queues). `tree`: (queue, root, tree, ttl, ends) of the workflow,
    written with the staging (shown by `supervisor job`, counted by `status`). `queues`:
    every queue a later step will be enqueued to, registered with the first ones (sv:queues:
    readers and drain() find them from now on)."""
    by_queue: dict[str, list[Effect]] = {}
    for effect in effects:
        queue = effect.queue if isinstance(effect, Enqueue) else effect.home
        by_queue.setdefault(queue, []).append(effect)
    opens: Calls = []
    commits: Calls = []
    for queue, items in by_queue.items():
        chords = [item for item in items if isinstance(item, OpenChord)]
        commit = Ops(queue, [keys.staged(queue, root)])
        if len(by_queue) == 1:  # one script: the chords, then the members
            commit.add_all(chords)
        elif chords:
            opening = Ops(queue, []).add_all(chords)
            opens.append((opening.names, opening.text()))
        for level in _levels(items):
            stream, listed = commit.level_keys(queue, level)
            op = ["commit", commit.key(keys.staged(queue, root, level)), stream]
            if due_ms:  # scheduled: into the delayed set, promoted to its level when due
                op += [listed or 0, commit.key(keys.delayed(queue)), due_ms]
            elif listed:
                op.append(listed)
            commit.ops.append(op)
        if any(isinstance(item, Enqueue) and item.due_ms for item in items):
            commit.ops.append(["commitd", commit.key(keys.staged_delayed(queue, root)),
                               commit.key(keys.delayed(queue))])
        commits.append((commit.names, commit.text()))
    # With --wait-replicas, the commits wait for the replicas to take them and every
    # write before them on their connections (the staging): NotReplicated makes the
    # producer send it all again (idempotent), as for any enqueue. The staging is a
    # generator: the sync sender sends each call as soon as it is made.
    return Sending({*by_queue, *queues},
                   [(_staging(by_queue, root, tree), False), (opens, False), (commits, True)])


def send(broker: Any, effects: list[Effect], root: str, tree: Tree | None = None,
         queues: Iterable[str] = (), due_ms: int = 0) -> None:
    """Write a workflow's first jobs all or nothing per queue (sending()), on a sync Broker;
    with `due_ms` (epoch ms) they are scheduled for then."""
    plan = sending(effects, root, tree, queues, due_ms)
    broker.remember_queues(plan.queues)
    for calls, wait in plan.rounds:
        broker.apply_workflow(calls, wait=wait)


async def asend(broker: Any, effects: list[Effect], root: str, tree: Tree | None = None,
                queues: Iterable[str] = (), due_ms: int = 0) -> None:
    """send(), on the async producer's AsyncBroker (redis.asyncio)."""
    plan = sending(effects, root, tree, queues, due_ms)
    await broker.remember_queues(plan.queues)
    for calls, wait in plan.rounds:
        await broker.apply_workflow(calls, wait=wait)


def _levels(items: list[Effect]) -> list[int]:
    """The priority levels the first jobs of one queue use, highest first, and always 0
    (whose commit is the one a workflow without priorities always had)."""
    used = {level_of(item.message) for item in items if isinstance(item, Enqueue)}
    return sorted(used | {0}, reverse=True)


def _staging(by_queue: dict[str, list[Effect]], root: str,
             tree: Tree | None) -> Iterator[tuple[list[str], str]]:
    """The tree's call, then each queue's staging calls, made as they are sent."""
    if tree is not None:
        queue, name, nodes, ttl, ends = tree
        groups = [node["group"] for node in nodes if "group" in node and node["group"] != name]
        yield tree_call(queue, name, jsonio.dumps(nodes), ttl, ends, groups)
    for queue, items in by_queue.items():
        staged = keys.staged(queue, root)
        jobs = [item for item in items if isinstance(item, Enqueue)]
        for start in range(0, len(jobs), STAGE_CHUNK):
            ops = Ops(queue, [staged])
            for job in jobs[start:start + STAGE_CHUNK]:
                if job.due_ms:  # a countdown of its own: its due goes with it (sending())
                    ops.ops.append(["stage", ops.key(keys.job(queue, job.job_id)),
                                    ops.key(keys.staged_delayed(queue, root)),
                                    f"{job.due_ms}|{job.message}", job.record, job.ttl])
                    continue
                # Each level's own list, committed into that level's stream (sending()).
                level = level_of(job.message)
                into = ops.key(keys.staged(queue, root, level)) if level else 1
                ops.ops.append(["stage", ops.key(keys.job(queue, job.job_id)), into,
                                job.message, job.record, job.ttl])
            yield ops.names, ops.text()


# --- handles ---------------------------------------------------------------------------


class StepResult(AsyncResult[Any]):
    """The handle of one task call of a workflow: an AsyncResult with `.parent` (what
    ran before it) and `.children` (what runs after it)."""

    def __init__(self, job_id: str, *, queue: str, client: Any = None, parent: Any = None,
                 workflow_id: str = "", aclient: Any = None) -> None:
        super().__init__(job_id, queue=queue, client=client, aclient=aclient)
        self.parent = parent
        self.children: list[Any] = []
        self.workflow_id = workflow_id  # the whole workflow's id (`supervisor job` takes it)

    # get() and aget() make the same decisions (_asks_parent, _check_started); only how
    # they read and wait differs.

    def get(self, timeout: float | None = None, poll: float = 0.002) -> Any:
        """The step's result. A step not made yet (its parent has not ended) is waited
        for; one that never will be (its parent failed or was cancelled: the chain
        stopped) raises the parent's error."""
        deadline = _deadline(timeout)
        while True:
            try:
                self._record()
                break
            except JobNotFound as missing:
                gate = self._gate(missing)
                if gate is not None:
                    try:
                        gate.get(timeout=_left(deadline))  # raises its error
                    except TimeoutError:
                        raise self._parent_unfinished() from None
                self._check_started(deadline, timeout)
                time.sleep(0.01)
        return super().get(_left(deadline, 0.0), poll)

    async def aget(self, timeout: float | None = None, poll: float = 0.002) -> Any:
        """get(), awaited: the same result and errors, waiting without blocking the loop."""
        deadline = _deadline(timeout)
        while True:
            try:
                await self._arecord()
                break
            except JobNotFound as missing:
                gate = self._gate(missing)
                if gate is not None:
                    try:
                        await gate.aget(timeout=_left(deadline))
                    except TimeoutError:
                        raise self._parent_unfinished() from None
                self._check_started(deadline, timeout)
                await asyncio.sleep(0.01)
        return await super().aget(_left(deadline, 0.0), poll)

    def _gate(self, missing: JobNotFound) -> StepResult | None:
        """For a step not made yet (`missing`, raised again when nothing will make it: no
        parent), the step whose end makes it, waited for: its error is the chain's if it
        stopped there. A chord's callback (parent: a group) is made, or failed with the
        cause, once the members end, and the chord itself when the step before the group
        settles: that step is the gate (the group's parent), none for a chord the
        workflow starts with (it is made with it: look again in a moment)."""
        if self.parent is None:
            raise missing
        gate = self.parent.parent if isinstance(self.parent, GroupResult) else self.parent
        return gate if isinstance(gate, StepResult) else None

    def _check_started(self, deadline: float | None, timeout: float | None) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {self.id} not started after {timeout}s") from None

    def _parent_unfinished(self) -> TimeoutError:
        return TimeoutError(f"job {self.id}: its parent has not finished")

    def cancel_workflow(self, by: str | None = None) -> dict[str, str]:
        return cancel_all(self, by)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None, least: float = 0.001) -> float | None:
    """Seconds left until `deadline` (None: no deadline), at least `least`."""
    return None if deadline is None else max(least, deadline - time.monotonic())


class GroupResult:
    """The handle of a group: `.get()` is the list of its members' results, in order.
    `.id` is the group's (for a workflow that is a group, also its `workflow_id`);
    `supervisor job` takes either and shows the workflow's tree."""

    def __init__(self, group_id: str, children: list[Any], parent: Any = None,
                 workflow_id: str = "") -> None:
        self.id = group_id
        self.children = children
        self.parent = parent
        self.workflow_id = workflow_id

    def get(self, timeout: float | None = None) -> list[Any]:
        """Every member's result, in order; the first member (in order) that failed
        raises its error."""
        deadline = _deadline(timeout)
        return [child.get(timeout=_left(deadline)) for child in self.children]

    async def aget(self, timeout: float | None = None) -> list[Any]:
        """get(), awaited: the same list and errors, without blocking the loop."""
        deadline = _deadline(timeout)
        return [await child.aget(timeout=_left(deadline)) for child in self.children]

    def ready(self) -> bool:
        return all(child.ready() for child in self.children)

    def cancel_workflow(self, by: str | None = None) -> dict[str, str]:
        return cancel_all(self, by)


def handles(steps: list[dict[str, Any]], parent: Any, client: Any, root: str = "",
            aclient: Any = None) -> Any:
    """The handle of the last of `steps`, linked to those before it; `root`: the
    workflow's id, every handle's `workflow_id`; `aclient`: the async producer's
    redis.asyncio client, for aget() (`client` None: the session's, made on first use)."""
    for step in steps:
        if "g" in step:
            members = [handles(member, parent, client, root, aclient) for member in step["g"]]
            made: Any = GroupResult(step["id"], members, parent, root)
        else:
            made = StepResult(step["id"], queue=step["q"], client=client, parent=parent,
                              workflow_id=root, aclient=aclient)
        if isinstance(parent, StepResult):
            parent.children.append(made)
        parent = made
    return parent


def cancel_all(handle: Any, by: str | None = None, rounds: int = 20) -> dict[str, str]:
    """Cancel every member of the workflow not finished yet: job id -> the reply's `what`.

    A member not made yet is made only when the one before it succeeds; a cancelled
    or failed member stops its chain and fails its chord. A member whose predecessor
    succeeded just now may still be on its way (a forward): it is asked again for a
    while until it is known.
    """
    from supervisor.api.control import cancel

    members = {step.id: step for step in _all_steps(handle)}
    replies: dict[str, str] = {}
    for _ in range(rounds):
        todo: dict[str, list[str]] = {}  # queue -> ids (each looked up in its own queue)
        for job_id, step in members.items():
            if replies.get(job_id) in (None, "unknown"):
                todo.setdefault(str(step.queue), []).append(job_id)
        for queue, ids in todo.items():
            for reply in cancel(ids, by=by, queue=queue, client=handle_client(handle)):
                replies[reply.job_id] = reply.what
        unknown = [members[job_id] for job_id, what in replies.items() if what == "unknown"]
        if not any(_coming(step) for step in unknown):
            break
        time.sleep(0.05)
    return replies


def handle_client(handle: Any) -> Any:
    """The Redis client of a workflow's handles (that of its producer)."""
    while not isinstance(handle, StepResult):
        handle = handle.children[0]
    return handle.client


def _coming(step: StepResult) -> bool:
    """Whether `step` will still be made: what runs before it succeeded."""
    parent = step.parent
    if parent is None:
        return False
    before = parent.children if isinstance(parent, GroupResult) else [parent]
    return all(item.state == SUCCEEDED for item in before)


def _all_steps(handle: Any) -> list[StepResult]:
    seen: dict[str, StepResult] = {}
    start = handle
    while start.parent is not None:
        start = start.parent
    todo: list[Any] = [start, handle]
    while todo:
        item = todo.pop()
        if isinstance(item, StepResult):
            if item.id in seen:
                continue
            seen[item.id] = item
        todo += list(getattr(item, "children", ())) + ([item.parent] if item.parent else [])
    return list(seen.values())

