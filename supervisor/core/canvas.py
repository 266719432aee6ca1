"""Workflows (chain, group, chord) as plain data, and what a step's end sets off.

Pure: no Redis. A workflow is compiled once, by its producer, into step
descriptions (JSON) that travel in the job messages (`Job.workflow`, the
message's "wf" field); every job id of the workflow is fixed then. When a
member ends, `after_success` / `after_failure` say what follows: jobs to
enqueue (`Enqueue`), a chord to open (`OpenChord`), a member's outcome to count
in its chord (`Report`). broker/workflow.py turns those into the operations that
settle.lua performs in the same step as the member's acknowledgement.

The "wf" object of a message:
  w   the workflow's id (its root), for the tree and the counts
  n   the steps still to run after this job (a chain's rest), each a step below
  wq  the queue whose slot keeps the workflow's tree and its count of ends
  c   the chord this job's chain feeds when it ends: {q home queue, id chord id,
      i member index, cb callback id, cbq its queue, cbt its task, cbp its priority
      (absent at 0), ttl, we the ends of the workflow that go with the callback's chain
      (lost if the chord fails)}
  in  this job is a chord's callback: {q home queue, id chord id, n members}; the
      worker reads the results from the chord's hash and passes them first
A step is a task call {t task, q queue, id job id, a args, k kwargs, si immutable,
ttl result ttl, pr priority (absent at 0), x the task's expires in seconds (absent
without), cd its countdown in seconds (absent without)} or a group {g [member chain, ...], id chord
id, p policy, home queue of its chord}; a member chain is a list of task calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from supervisor.core import jsonio, record
from supervisor.core.job import Job, decode

# Failure policies of a chord (chord(..., on_failure=...)).
FAIL = "fail"  # a member failed for good or cancelled: the callback fails with the cause
RUN = "run"  # the callback runs anyway, with each failure in place of its result
POLICIES = (FAIL, RUN)

# What a failed member leaves in its chord's results under on_failure="run".
FAILED_MARK = "__failed__"

NO_VALUE: Any = object()  # a workflow's first steps: no previous result to pass


class Enqueue(NamedTuple):
    """A job the workflow adds now (a chain's next step, a group's member); one with a
    `due_ms` (its step's countdown, epoch ms) goes to its queue's delayed set."""

    queue: str
    job_id: str
    message: str
    record: str
    ttl: int
    due_ms: int = 0


class OpenChord(NamedTuple):
    """A chord's state, made before any of its members can end: its hash in `home`."""

    home: str
    chord_id: str
    members: int
    policy: str
    callback: Enqueue
    ttl: int


class End(NamedTuple):
    """Branches of the workflow that ended (`ends` of them, for good when `failed`: they
    stopped), counted once per `job_id` in its count of ends (keys.workflow_ends, in the
    slot of `home`, the tree's queue); the last one finishes the workflow."""

    home: str
    root: str
    job_id: str
    ends: int
    failed: bool


class Report(NamedTuple):
    """A member's outcome, counted in its chord (at most once per member index)."""

    home: str
    chord_id: str
    member: int
    value: str  # 'v' + result JSON, or 'f' + failure JSON
    failed: bool
    callback_queue: str
    callback_id: str
    failed_record: str  # the callback's record if this failure fails the chord
    ttl: int
    end: End | None = None  # what the workflow loses if this failure fails the chord
    callback_level: int = 0  # the callback's priority: the level stream it is added to


Effect = Enqueue | OpenChord | Report | End


class Context(NamedTuple):
    """What every job a workflow makes shares: its id, headers, producing host."""

    root: str
    headers: dict[str, str]
    host: str
    tree_queue: str = ""  # the queue whose slot keeps the workflow's tree (keys.workflow)


def ends(steps: list[dict[str, Any]]) -> int:
    """How many jobs end a branch of the chain `steps` (top level): its last step, or each
    member of a group that ends it. The workflow is finished when all of them ended, or
    stopped before (a failure, a cancel: End effects count what is lost)."""
    last = steps[-1]
    return len(last["g"]) if "g" in last else 1


def job_of(step: dict[str, Any], value: Any, ctx: Context, rest: list[Any] | None,
           feeds: dict[str, Any] | None, takes: dict[str, Any] | None = None) -> Job:
    """The job of a task-call step: the previous result first unless it is immutable."""
    args = list(step["a"])
    if value is not NO_VALUE and not step.get("si"):
        args.insert(0, value)
    flow: dict[str, Any] = {"w": ctx.root, "wq": ctx.tree_queue}
    if rest:
        flow["n"] = rest
    if feeds is not None:
        flow["c"] = feeds
    if takes is not None:
        flow["in"] = takes
    # The priority travels in the message, as any job's: retries, hand-backs and delayed
    # attempts of the step stay on its level.
    return Job(id=step["id"], task=step["t"], queue=step["q"], args=tuple(args),
               kwargs=dict(step["k"]), host=ctx.host, headers=dict(ctx.headers),
               workflow=flow, priority=int(step.get("pr", 0)),
               # A task's expires: seconds from now, when the step's job is made (a chain's
               # next step when its parent settles), as apply_async counts it.
               expires=time.time() + float(step["x"]) if step.get("x") else 0.0)


def _enqueue(job: Job, ttl: int, countdown: float = 0.0) -> Enqueue:
    """The Enqueue of a step's job made now; with its step's `countdown`, due that many
    seconds from now (its expires counted from then, as apply_async counts it)."""
    if not countdown:
        return Enqueue(job.queue, job.id, job.encode(), record.of_new_job(job, 0), ttl)
    due_ms = int((time.time() + countdown) * 1000)
    if job.expires:
        job = replace(job, expires=job.expires + countdown)
    return Enqueue(job.queue, job.id, job.encode(), record.of_new_job(job, due_ms), ttl,
                   due_ms)


def start(steps: list[dict[str, Any]], value: Any, ctx: Context,
          feeds: dict[str, Any] | None) -> list[Effect]:
    """What starting `steps` (a chain, or its rest) sets off, `value` the previous result.

    A group followed by a step is a chord whose callback is that step: its state
    comes first in the list, before any member that will report to it.
    """
    first, after = steps[0], steps[1:]
    if "g" not in first:
        return [_enqueue(job_of(first, value, ctx, after, feeds), first["ttl"],
                         float(first.get("cd", 0.0)))]
    members = first["g"]
    effects: list[Effect] = []
    if not after:  # a group that ends the chain: its members feed what the chain feeds
        if feeds is not None and len(members) != 1:
            raise ValueError("a group cannot end a chain that feeds a chord")
        for member in members:
            effects += start(member, value, ctx, feeds)
        return effects
    callback, rest = after[0], after[1:]
    home = first["home"]
    takes = None if callback.get("si") else {"q": home, "id": first["id"], "n": len(members)}
    # The callback's message is made now and added when the last member ends, maybe long
    # after: an `expires` counted from now would cancel it for its members' time, so a
    # callback has none.
    cb_job = replace(job_of(callback, NO_VALUE, ctx, rest, feeds, takes), expires=0.0)
    effects.append(OpenChord(home, first["id"], len(members), first["p"],
                             _enqueue(cb_job, callback["ttl"]), callback["ttl"]))
    for index, member in enumerate(members):
        into = {"q": home, "id": first["id"], "i": index, "cb": callback["id"],
                "cbq": callback["q"], "cbt": callback["t"], "ttl": callback["ttl"],
                "we": ends(after) if feeds is None else 0}
        if callback.get("pr"):  # the member that ends the chord adds it to its level
            into["cbp"] = callback["pr"]
        effects += start(member, value, ctx, into)
    return effects


def scheduled(effects: list[Effect], due_ms: int) -> list[Effect]:
    """`effects` with their first jobs scheduled for `due_ms` (epoch ms): their records
    say so (state `scheduled`, `due`), and the commit puts them in the delayed set. A
    chord's callback is left as it is: it is made when its members end."""
    return [_scheduled(effect, due_ms) if isinstance(effect, Enqueue) else effect
            for effect in effects]


def _scheduled(effect: Enqueue, due_ms: int) -> Enqueue:
    job = decode(effect.message)
    delay = max(0.0, due_ms / 1000 - time.time())
    if job.expires:  # not expired by its own delay: counted from when it is due
        job = replace(job, expires=job.expires + delay)
    own = effect.due_ms + int(delay * 1000) if effect.due_ms else 0  # its countdown after it
    return Enqueue(effect.queue, effect.job_id, job.encode(),
                   record.of_new_job(job, own or due_ms), effect.ttl, own)


def context_of(job: Job) -> Context:
    flow = job.workflow or {}
    return Context(str(flow.get("w", job.id)), job.headers, job.host, str(flow.get("wq", "")))


def after_success(job: Job, value: Any) -> list[Effect]:
    """What a workflow member's success sets off: its chain's next step, or its report."""
    flow = job.workflow or {}
    rest, feeds = flow.get("n"), flow.get("c")
    if rest:
        return start(rest, value, context_of(job), feeds)
    if feeds is not None:
        return [_report(feeds, "v" + jsonio.dumps(value), False, "")]
    end = _end(job, job.id, 1, False)
    return [end] if end else []


def _end(job: Job, job_id: str, count: int, failed: bool) -> End | None:
    """The End of `count` branches of the job's workflow (none if its tree keeps no count:
    a message made before the count existed, or a workflow built without a tree)."""
    flow = job.workflow or {}
    if not flow.get("wq") or not count:
        return None
    return End(str(flow["wq"]), str(flow.get("w", "")), job_id, count, failed)


def after_failure(job: Job, failure: dict[str, Any]) -> list[Effect]:
    """What a member's failure for good (or cancel) sets off: its chain stops; the chord it
    feeds counts the failure (and fails, unless its policy runs the callback anyway)."""
    flow = job.workflow or {}
    feeds = flow.get("c")
    if feeds is None:  # its chain stops: the branches its rest would have ended are lost
        rest = flow.get("n")
        end = _end(job, job.id, ends(rest) if rest else 1, True)
        return [end] if end else []
    cause = {FAILED_MARK: True, "job_id": job.id, "task": job.task, **failure}
    callback = Job(id=feeds["cb"], task=feeds["cbt"], queue=feeds["cbq"], host=job.host,
                   headers=dict(job.headers),
                   workflow={"w": (job.workflow or {}).get("w"),
                             "wq": (job.workflow or {}).get("wq")})
    failed_record = chord_failed_record(callback, cause)
    lost = _end(job, str(feeds["cb"]), int(feeds.get("we", 0)), True)
    return [_report(feeds, "f" + jsonio.dumps(cause), True, failed_record, lost)]


def chord_failed_record(callback: Job, cause: dict[str, Any]) -> str:
    """The record of a chord's callback that will not run: a member failed (`cause`)."""
    message = (f"member {cause['job_id']} ({cause['task']}) of its chord ended "
               f"{cause.get('state', 'failed')}: {cause.get('message', '')}")
    written = jsonio.loads(record.failed(callback, [], record.Failure(
        "ChordFailed", message, "", "chord_failed")))
    written["chord_failed"] = cause
    return jsonio.dumps(written)


def _report(feeds: dict[str, Any], value: str, failed: bool, failed_record: str,
            end: End | None = None) -> Report:
    return Report(feeds["q"], feeds["id"], int(feeds["i"]), value, failed, feeds["cbq"],
                  feeds["cb"], failed_record, int(feeds["ttl"]), end,
                  int(feeds.get("cbp", 0)))


def results_of(fields: dict[str, str], members: int) -> list[Any]:
    """A chord's results in member order, from its hash (fields 'r<index>')."""
    values: list[Any] = []
    for index in range(members):
        raw = fields.get(f"r{index}")
        if raw is None:
            raise LookupError(f"result of member {index} is missing")
        values.append(jsonio.loads(raw[1:]))
    return values


def chord_input(job: Job, read: Callable[[str, str, int], list[Any]] | None) -> Job:
    """A chord callback's job with its members' results as the first argument.

    `read(home queue, chord id, members)` gives them (LookupError if gone). The job
    returned no longer asks for them: a retry's message carries them inline.
    """
    flow = dict(job.workflow or {})
    takes = flow.pop("in")
    if read is None:
        raise LookupError("this worker cannot read chord results")
    results = read(str(takes["q"]), str(takes["id"]), int(takes["n"]))
    return replace(job, args=(results, *job.args), workflow=flow)
