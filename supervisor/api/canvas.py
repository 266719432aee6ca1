"""Workflows in Celery's vocabulary: `chain`, `group`, `chord`, and their handles.

`chain(a.s(2, 2), b.s(4))` (or `a.s(2, 2) | b.s(4)`), `group(...)`, `chord(header,
body)`: compiled here into core/canvas.py's step descriptions, every job id fixed
now, then enqueued all or nothing per queue: the first members are staged (not
runnable) in chunks, and one commit per queue opens the chords and makes them
runnable at once (workflow.lua). What follows a member (its chain's next step, its
chord's count, the callback) is decided by the worker's settle of that member.

From asyncio code, `await workflow.adelay()` / `aapply_async()`: the same compiled
calls (`prepare`, the one builder), sent on the async producer (`alaunch`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

from supervisor.core import canvas
from supervisor.core.job import new_job_id
from supervisor.core.priority import effective_priority

__all__ = ["Chain", "Chord", "Group", "chain", "chord", "group"]

Node = Any  # Signature (api/task.py) | Chain | Group | Chord


def is_signature(node: Any) -> bool:
    """A task signature (registry.Signature, duck-typed: the registry imports this module)."""
    return hasattr(node, "task") and hasattr(node, "immutable")


class _Composable:
    """`|` between any two workflow parts makes a chain."""

    def __or__(self, other: Node) -> Chain:
        return Chain(self, other)

    def delay(self, *, headers: dict[str, str] | None = None) -> Any:
        """Enqueue the workflow; returns its handle (`.get()`, `.parent`, `.children`)."""
        return launch(self, headers)

    def apply_async(self, *, headers: dict[str, str] | None = None,
                    countdown: float | None = None, eta: datetime | None = None) -> Any:
        """delay(), with `headers` (str to str) given to every member, and the first jobs
        due `countdown` seconds from now or at `eta` (an aware datetime), as for a task."""
        return launch(self, headers, countdown=countdown, eta=eta)

    async def adelay(self, *, headers: dict[str, str] | None = None) -> Any:
        """delay() from asyncio code (never blocks the loop): `await chain(...).adelay()`;
        the handle's `await handle.aget(timeout=...)` waits for the result."""
        return await alaunch(self, headers)

    async def aapply_async(self, *, headers: dict[str, str] | None = None,
                           countdown: float | None = None,
                           eta: datetime | None = None) -> Any:
        """apply_async() from asyncio code."""
        return await alaunch(self, headers, countdown=countdown, eta=eta)


class Chain(_Composable):
    """Steps run one after the other; each result is the first argument of the next."""

    def __init__(self, *steps: Node) -> None:
        if not steps:
            raise ValueError("a chain needs at least one step")
        self.steps = [_checked(step) for step in steps]


class Group(_Composable):
    """Members run in parallel; `.get()` is the list of their results, in order."""

    def __init__(self, *members: Node) -> None:
        if len(members) == 1 and not _is_part(members[0]):
            members = tuple(members[0])  # group(generator) / group([...])
        self.members = [_checked(member) for member in members]
        if not self.members:
            raise ValueError("a group needs at least one member")


class Chord(_Composable):
    """A group, then a callback called once with the list of the members' results.

    `on_failure="fail"` (default): a member that fails for good (or is cancelled)
    fails the callback, whose record says which member and why; `"run"`: the callback
    runs anyway, with a dict {"__failed__": True, job_id, task, state, exc_type,
    message, reason} in place of each failed member's result.
    """

    def __init__(self, header: Node, body: Any = None, *,
                 on_failure: str = canvas.FAIL) -> None:
        if on_failure not in canvas.POLICIES:
            raise ValueError(f"on_failure must be one of {', '.join(canvas.POLICIES)}, "
                             f"got {on_failure!r}")
        self.header = header if isinstance(header, Group) else Group(header)
        self.body = body
        self.on_failure = on_failure

    def __call__(self, body: Any) -> Any:
        """`chord(header)(callback.s())`: set the callback and enqueue."""
        return Chord(self.header, body, on_failure=self.on_failure).delay()


def _is_part(node: Any) -> bool:
    return is_signature(node) or isinstance(node, _Composable)


def chain(*steps: Node) -> Chain:
    return Chain(*steps)


def group(*members: Node) -> Group:
    return Group(*members)


def chord(header: Node, body: Any = None, *,
          on_failure: str = canvas.FAIL) -> Chord:
    return Chord(header, body, on_failure=on_failure)


def _checked(node: Node) -> Node:
    if not _is_part(node):
        raise TypeError(f"a workflow step is a task signature (task.s(...)), a chain, a "
                        f"group or a chord, not {type(node).__name__}")
    return node


# --- compiling into step descriptions (core/canvas.py) --------------------------------


def _ttl(sig: Any, default: int) -> int:
    return int(sig.task.result_ttl or default)


def _call(sig: Any, default_ttl: int) -> dict[str, Any]:
    step = {"t": sig.task.name, "q": sig.queue or sig.task.queue, "id": new_job_id(),
            "a": list(sig.args),
            "k": dict(sig.kwargs), "si": sig.immutable, "ttl": _ttl(sig, default_ttl)}
    priority = effective_priority(getattr(sig, "priority", None), sig.task)
    if priority:  # left out at 0: the steps (and messages) of most workflows stay as they were
        step["pr"] = priority
    if sig.task.expires:  # @task(expires=S): counted from when the step's job is made
        step["x"] = float(sig.task.expires)
    if sig.countdown:  # .set(countdown=S): due S after it is made
        step["cd"] = float(sig.countdown)
    return step


def steps_of(node: Node, default_ttl: int) -> list[dict[str, Any]]:
    """The chain of step descriptions of any workflow part."""
    if is_signature(node):
        return [_call(node, default_ttl)]
    if isinstance(node, Chain):
        steps: list[dict[str, Any]] = []
        for step in node.steps:
            steps += steps_of(step, default_ttl)
        _check_chain(steps)
        return steps
    if isinstance(node, Chord):
        if node.body is None:
            raise ValueError("a chord needs its callback: chord(header, callback.s()) or "
                             "chord(header)(callback.s())")
        return [_group_step(node.header, node.on_failure, default_ttl),
                _call(node.body, default_ttl)]
    return [_group_step(node, canvas.FAIL, default_ttl)]


def _group_step(node: Group, policy: str, default_ttl: int) -> dict[str, Any]:
    members: list[list[dict[str, Any]]] = []
    for member in node.members:
        if isinstance(member, Group):  # a group in a group is its members
            members += _group_step(member, policy, default_ttl)["g"]
            continue
        steps = steps_of(member, default_ttl)
        _check_chain(steps)  # a chord member (not a Chain): its group's policy and home
        if "g" in steps[-1]:
            # What the member reports to its group is one value: a group inside it must
            # be a chord (followed by a step), whose callback's result is that value.
            raise ValueError("a group's member chain cannot end with a group: end it with "
                             "a task that takes the list (a chord), e.g. "
                             "chain(a.s(), group(b.s(), c.s()), collect.s())")
        members.append(steps)
    last_queues = {member[-1]["q"] for member in members}
    return {"g": members, "id": new_job_id(), "p": policy,
            "home": last_queues.pop() if len(last_queues) == 1 else ""}


def _check_chain(steps: list[dict[str, Any]]) -> None:
    for index, step in enumerate(steps):
        if "g" not in step or index == len(steps) - 1:
            continue
        after = steps[index + 1]
        if "g" in after:
            raise ValueError("a group directly followed by another group in a chain is not "
                             "supported: put a task between them")
        if after.get("cd"):
            # Its message is made when the chord opens and added by the script that
            # settles the last member: no place to count a countdown from yet.
            raise ValueError("a chord's callback cannot have a countdown of its own (not "
                             "supported yet): put it on the step after the callback")
        step["p"] = step.get("p", canvas.FAIL)
        if not step["home"]:  # members end in several queues: the chord lives with its callback
            step["home"] = after["q"]


# --- enqueueing ------------------------------------------------------------------------


def _calls(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every task call of a workflow's steps, depth first."""
    for step in steps:
        if "g" in step:
            for member in step["g"]:
                yield from _calls(member)
        else:
            yield step


class Launch(NamedTuple):
    """A workflow compiled for one producer, every job id fixed: what its sender writes
    (api/flows.py `send` / `asend`) and what its handles are made of."""

    steps: list[dict[str, Any]]
    root: str  # the workflow's id
    effects: list[canvas.Effect]  # its first jobs and chords
    tree: tuple[str, str, Any, int, int]  # (queue, root, tree, ttl, ends), for `send`
    queues: set[str]  # every queue a step of it will be enqueued to
    due_ms: int = 0  # when its first jobs are due (epoch ms; 0: now)


def prepare(node: Node, headers: dict[str, str] | None, producer: Any, *,
            countdown: float | None = None, eta: datetime | None = None) -> Launch:
    """Compile `node` for `producer` (sync or async: its result TTL, hooks, host): the one
    builder of `launch` and `alaunch`. `before_enqueue` hooks run here, once for the
    workflow (for its first job), and their headers go into every member. With a
    `countdown` or `eta` the first jobs are scheduled (records and all): committed to
    their queues' delayed sets, promoted when due like any delayed job."""
    from supervisor.api import middleware
    from supervisor.api.producer import due_at_ms
    from supervisor.api.workflowview import tree_of

    due_ms = due_at_ms(countdown, eta)

    steps = steps_of(node, producer.config.result_ttl)
    _check_chain(steps)
    for step in steps:  # a trailing group's chord home is unused; any non-empty queue
        if "g" in step and not step["home"]:
            step["home"] = step["g"][0][-1]["q"]
    # The workflow's id: that of its group when it is one (GroupResult.id, as Celery's),
    # else a new one; every handle has it as `workflow_id` (`supervisor job` shows it).
    root = steps[0]["id"] if len(steps) == 1 and "g" in steps[0] else uuid.uuid4().hex
    first = steps[0] if "g" not in steps[0] else steps[0]["g"][0][0]
    own = middleware.enqueue_headers(producer.hooks, first["id"], first["t"], first["q"],
                                     tuple(first["a"]), first["k"], headers)
    ctx = canvas.Context(root, own, producer.host, first["q"])
    effects = canvas.start(steps, canvas.NO_VALUE, ctx, None)
    if due_ms:
        effects = canvas.scheduled(effects, due_ms)
    tree = (first["q"], root, tree_of(steps), max(call["ttl"] for call in _calls(steps)),
            canvas.ends(steps))
    # Every queue a step will be enqueued to is known from the send on (sv:queues), as if
    # each step were enqueued now: readers and drain() find them.
    return Launch(steps, root, effects, tree, {call["q"] for call in _calls(steps)}, due_ms)


LOST = "the workflow was not enqueued (queues committed before may run)"


def launch(node: Node, headers: dict[str, str] | None, *, countdown: float | None = None,
           eta: datetime | None = None) -> Any:
    """Compile, enqueue all or nothing per queue, and return the handle."""
    from supervisor.api.flows import handles, send
    from supervisor.api.producer import current_producer

    producer = current_producer()
    made = prepare(node, headers, producer, countdown=countdown, eta=eta)
    producer._retrying(  # noqa: SLF001
        lambda: send(producer.broker, made.effects, made.root, made.tree, made.queues,
                     made.due_ms), LOST)
    return handles(made.steps, None, producer.client, made.root)


async def alaunch(node: Node, headers: dict[str, str] | None, *,
                  countdown: float | None = None, eta: datetime | None = None) -> Any:
    """launch() from asyncio code: the same calls (prepare), sent on the running loop's
    async producer (redis.asyncio) within its retry window; the handles await with aget()."""
    from supervisor.api.aproducer import current_async_producer
    from supervisor.api.flows import asend, handles

    producer = current_async_producer()
    made = prepare(node, headers, producer, countdown=countdown, eta=eta)
    await producer._retrying(  # noqa: SLF001
        lambda: asend(producer.broker, made.effects, made.root, made.tree, made.queues,
                      made.due_ms), LOST)
    return handles(made.steps, None, None, made.root, aclient=producer.client)
