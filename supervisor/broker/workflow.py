"""Workflows on Redis: core/canvas.py's effects made into wfops.lua operations.

Every operation runs in one slot (Redis Cluster): the slot of the queue whose
script applies it (settle.lua of the member's queue, or workflow.lua). What
belongs to another queue's slot is wrapped into a forward, pushed on this
queue's forward list in the same step, and moved on by broker/forwarding.py (a
worker chore of the queue): applied in the target slot, then removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from supervisor.broker import keys, replicas
from supervisor.broker.direct import DirectScript, raise_error_reply
from supervisor.core import canvas, jsonio
from supervisor.core.canvas import Effect, End, Enqueue, OpenChord, Report
from supervisor.core.job import decode
from supervisor.core.priority import level_of
from supervisor.errors import InvalidMessage

log = logging.getLogger("supervisor.workflow")

class Ops:
    """Operations for one slot (that of `here`), naming keys by their index in `names`."""

    def __init__(self, here: str, names: list[str]) -> None:
        self.here = here
        self.names = names
        self.index = {name: i + 1 for i, name in enumerate(names)}
        self.ops: list[list[Any]] = []

    def key(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            self.names.append(name)
            found = self.index[name] = len(self.names)
        return found

    def add_all(self, effects: Iterable[Effect]) -> Ops:
        for effect in effects:
            self.add(effect)
        return self

    def add(self, effect: Effect) -> None:
        target = effect.queue if isinstance(effect, Enqueue) else effect.home
        if target != self.here:
            there = Ops(target, [])
            there.add(effect)
            self.ops.append(["fwd", self.key(keys.forward(self.here)),
                             jsonio.dumps({"k": there.names, "o": there.ops})])
        elif isinstance(effect, Enqueue) and effect.due_ms:
            # Its step's countdown: into the delayed set, promoted to its level when due.
            self.ops.append(["enqd", self.key(keys.job(target, effect.job_id)),
                             self.key(keys.delayed(target)), effect.message, effect.record,
                             effect.ttl, effect.due_ms])
        elif isinstance(effect, Enqueue):
            stream, listed = self.level_keys(target, level_of(effect.message))
            op = ["enq", self.key(keys.job(target, effect.job_id)), stream, effect.message,
                  effect.record, effect.ttl]
            self.ops.append([*op, listed] if listed else op)  # level 0: as it always was
        elif isinstance(effect, End):
            self.ops.append(self._end(effect))
        elif isinstance(effect, OpenChord):
            callback = effect.callback
            self.ops.append(["chord", self.key(keys.chord(target, effect.chord_id)),
                             effect.members, effect.policy, callback.message, callback.record,
                             effect.ttl, jsonio.dumps(_callback_names(callback)),
                             self.key(keys.chords(target))])
        else:
            self.ops.append(self._report(effect))

    def _report(self, report: Report) -> list[Any]:
        listed = 0
        if report.callback_queue == self.here:
            x = self.key(keys.job(self.here, report.callback_id))
            y, listed = self.level_keys(self.here, report.callback_level)
        else:  # the chord's hash names the callback's keys there (_callback_names)
            x, y = 0, self.key(keys.forward(self.here))
        op = ["m", self.key(keys.chord(self.here, report.chord_id)), report.member,
              report.value, 1 if report.failed else 0, x, y, report.failed_record,
              self.key(keys.chords(self.here)), report.chord_id,
              self._one(report.end) if report.end is not None else 0]
        return [*op, listed] if listed else op

    def level_keys(self, queue: str, level: int) -> tuple[int, int]:
        """(the stream of `level`, the levels set or 0 at level 0) of `queue`, as key
        indexes: a job of level N > 0 is added to sv:{q}:stream:pN and N listed in the
        queue's levels set in the same script, so every worker reading the set finds it.
        Both share the queue's hash tag: no other slot is touched."""
        stream = self.key(keys.level_stream(queue, level))
        return stream, self.key(keys.levels(queue)) if level else 0

    def _one(self, effect: Effect) -> list[Any]:
        """The one operation (or forward) applying `effect` from this slot, not added."""
        kept, self.ops = self.ops, []
        self.add(effect)
        made, self.ops = self.ops[0], kept
        return made

    def _end(self, end: End) -> list[Any]:
        running, succeeded, failed = (keys.workflows(self.here, state)
                                      for state in keys.WORKFLOW_STATES)
        return ["end", self.key(keys.workflow_ends(self.here, end.root)), end.job_id, end.ends,
                1 if end.failed else 0, self.key(running), self.key(succeeded),
                self.key(failed), end.root]

    def text(self) -> str:
        return jsonio.dumps(self.ops) if self.ops else ""


def _callback_names(callback: Enqueue) -> list[str]:
    """The keys a chord's callback is added with when the member that ends the chord is
    of another slot (wfops.lua 'm' forwards an 'enq' naming them): its record, its level's
    stream and, above level 0, its queue's levels set. A chord opened before levels
    existed names two: level 0."""
    level = level_of(callback.message)
    names = [keys.job(callback.queue, callback.job_id), keys.level_stream(callback.queue, level)]
    return [*names, keys.levels(callback.queue)] if level else names


def tree_call(queue: str, root: str, tree: str, ttl: int, ends: int,
              groups: Iterable[str] = ()) -> tuple[list[str], str]:
    """workflow.lua's (KEYS, operations) writing a workflow's tree, its count of ends, its
    place among the queue's running workflows and the root of each of its `groups` (their
    ids), once (a producer's retry adds nothing)."""
    ops = Ops(queue, [keys.workflow(queue, root), keys.workflow_ends(queue, root),
                      keys.workflows(queue, "running")])
    ops.ops.append(["wf", 1, tree, ttl, 2, ends, 3, root])
    for group_id in groups:
        ops.ops.append(["rec", ops.key(keys.workflow_group(queue, group_id)), root, ttl])
    return ops.names, ops.text()


def apply_many(script: DirectScript, calls: Iterable[tuple[list[str], str]],
               wait: tuple[str, int, int] | None = None) -> None:
    """Run workflow.lua once per (KEYS, operations) of `calls`, pipelined: one round trip
    (on a cluster, one per node: ClusterCommands routes each call by its first key, and
    every key of a call has one queue's hash tag). Each call is sent as soon as it is
    made (`calls` may be a generator), so Redis runs one while the next is built.

    Calls answered NOSCRIPT (a fresh or restarted server; on a cluster, one node of
    several) wrote nothing: the script is loaded and just those are sent again. The
    first error reply is raised once every reply was read. The calls may run in any
    order across nodes: send what must come first in an earlier apply_many. `wait`
    (--wait-replicas: "WAIT", n, ms) follows the calls on their connections (each node
    written to), as enqueue_many's does, and NotReplicated is raised when too few
    replicas took them (and every write before them on those connections).
    """
    sent: list[tuple[Any, ...]] = []

    def commands() -> Iterator[tuple[Any, ...]]:
        for names, text in calls:
            if text:
                sent.append(script.args(names, [text]))
                yield sent[-1]
        if wait is not None and sent:
            sent.append(wait)
            yield wait

    replies = script.commands.call_stream(commands())
    missing = forgotten(replies)
    if missing:
        script.load()
        merge_resent(replies, missing, script.commands.call_many(resend_of(sent, missing, wait)),
                     wait)
    finish(replies, wait)


# What apply_many decides, shared with the async producer's sender (async_streams.py
# AsyncBroker.apply_workflow): only the sending differs.


def script_calls(sha: str, calls: Iterable[tuple[list[str], str]],
                 wait: tuple[str, int, int] | None) -> list[tuple[Any, ...]]:
    """The EVALSHA commands of workflow.lua for `calls` (those with operations), then
    `wait` when given and anything is sent (apply_many builds the same, lazily)."""
    sent: list[tuple[Any, ...]] = [("EVALSHA", sha, len(names), *names, text)
                                   for names, text in calls if text]
    if wait is not None and sent:
        sent.append(wait)
    return sent


def forgotten(replies: Sequence[Any]) -> list[int]:
    """The positions of the calls answered NOSCRIPT: they wrote nothing, to send again."""
    return [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]


def resend_of(sent: Sequence[tuple[Any, ...]], missing: Sequence[int],
              wait: tuple[str, int, int] | None) -> list[tuple[Any, ...]]:
    """What to send again once the script is loaded: the calls at `missing`, and a WAIT
    behind them (theirs is a new write)."""
    return [sent[i] for i in missing] + ([wait] if wait is not None else [])


def merge_resent(replies: list[Any], missing: Sequence[int], again: Sequence[Any],
                 wait: tuple[str, int, int] | None) -> None:
    """Put the replies of the calls sent again in place of their NOSCRIPT. The WAIT reply
    is the fewer replicas of the two WAITs: the first covers the calls that ran at once,
    the second those sent again (each counts the writes of its own connection)."""
    for i, reply in zip(missing, again, strict=False):
        replies[i] = reply
    if wait is not None:
        replies[-1] = replicas.fewest(replies[-1], again[-1])


def finish(replies: Sequence[Any], wait: tuple[str, int, int] | None) -> None:
    """NotReplicated when too few replicas took the calls (`wait`: the last reply), then
    the first error reply, once every reply was read."""
    if wait is not None and replies:
        replicas.check(replies[-1], wait)
    raise_error_reply(replies)


def _failure(written: dict[str, Any], state: str) -> dict[str, Any]:
    return {"state": state, "exc_type": written.get("exc_type", ""),
            "message": written.get("message", ""), "reason": written.get("reason", "")}


CANCELLED = {"state": "cancelled", "exc_type": "JobCancelled", "message": "cancelled",
             "reason": "cancelled"}


def outcome_effects(message: str, outcome: Any) -> tuple[list[Effect], list[Effect]]:
    """(effects as settled, effects if settle.lua turns it into a cancel) of one entry."""
    try:
        job = decode(message)
    except InvalidMessage:
        return [], []
    if not job.workflow:
        return [], []
    if_cancelled = canvas.after_failure(job, CANCELLED)
    if outcome.keep_record:  # cancelled before it started
        return if_cancelled, if_cancelled
    if not outcome.record:  # succeeded, result ignored
        return canvas.after_success(job, None), []
    if outcome.retry_message:
        return [], if_cancelled
    written = jsonio.loads(outcome.record)
    state = written.get("state")
    if outcome.dead_letter or state == "failed":
        return canvas.after_failure(job, _failure(written, "failed")), if_cancelled
    if state == "succeeded":
        return canvas.after_success(job, written.get("result")), []
    if state == "cancelled":
        return if_cancelled, if_cancelled
    return [], if_cancelled


def settle_flows(queue: str, items: Sequence[Any], names: list[str]) -> list[tuple[str, str]]:
    """The two flow values of settle.lua per entry ('' for plain jobs); the keys they name
    are appended to `names` (the script's KEYS so far)."""
    flows: list[tuple[str, str]] = []
    ops: Ops | None = None
    for item in items:
        message = item.delivery.message
        if '"wf":' not in message:  # a plain job: one substring test, nothing decoded
            flows.append(("", ""))
            continue
        settled, if_cancelled = outcome_effects(message, item.outcome)
        ops = ops or Ops(queue, names)
        values = []
        for effects in (settled, if_cancelled):
            ops.ops = []
            values.append(ops.add_all(effects).text())
        flows.append((values[0], values[1]))
    return flows


def chord_results(client: Any, queue: str, chord_id: str, members: int) -> list[Any]:
    """The results of a chord's members in order (LookupError when its hash is gone)."""
    fields = client.hgetall(keys.chord(queue, chord_id))
    if not fields:
        raise LookupError(f"chord {chord_id} has no state in queue {queue} (expired?)")
    return canvas.results_of(fields, members)
