"""core/canvas.py: what a workflow member's end sets off (pure decisions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from supervisor.core import canvas
from supervisor.core.canvas import End, Enqueue, OpenChord, Report
from supervisor.core.job import Job, decode


def call(job_id: str, task: str = "t.add", queue: str = "q", *args: Any,
         si: bool = False) -> dict[str, Any]:
    return {"t": task, "q": queue, "id": job_id, "a": list(args), "k": {}, "si": si,
            "ttl": 60}


CTX = canvas.Context("wf", {"tenant": "acme"}, "host", "q")


def test_a_chain_step_passes_its_result_first_and_an_immutable_one_does_not() -> None:
    [first] = canvas.start([call("a", "t.add", "q", 1, 1), call("b", "t.add", "q", 4),
                            call("c", "t.add", "q", 9, si=True)], canvas.NO_VALUE, CTX, None)
    assert isinstance(first, Enqueue)
    job = decode(first.message)
    assert job.args == (1, 1) and job.headers == {"tenant": "acme"}
    [second] = canvas.after_success(job, 2)
    assert isinstance(second, Enqueue)
    step_b = decode(second.message)
    assert (step_b.id, step_b.args) == ("b", (2, 4))
    [third] = canvas.after_success(step_b, 6)
    assert decode(third.message).args == (9,)  # .si(): the result is not passed
    # The chain's end: nothing more to run; the workflow's one branch ended.
    assert canvas.after_success(decode(third.message), 9) == [End("q", "wf", "c", 1, False)]
    assert json.loads(third.record)["workflow"] == {"id": "wf", "queue": "q"}


def test_a_group_then_a_step_opens_its_chord_before_any_member() -> None:
    group = {"g": [[call("m0")], [call("m1", "t.add", "other")]], "id": "ch", "p": "fail",
             "home": "q"}
    effects = canvas.start([group, call("cb", "t.total")], canvas.NO_VALUE, CTX, None)
    assert isinstance(effects[0], OpenChord) and effects[0].members == 2
    assert [e.job_id for e in effects[1:] if isinstance(e, Enqueue)] == ["m0", "m1"]
    callback = decode(effects[0].callback.message)
    assert callback.workflow is not None and callback.workflow["in"] == {
        "q": "q", "id": "ch", "n": 2}
    member = decode(effects[2].message)  # type: ignore[union-attr]
    [report] = canvas.after_success(member, 5)
    assert isinstance(report, Report)
    assert (report.home, report.member, report.value, report.failed) == ("q", 1, "v5", False)


def test_a_failure_reports_to_its_chord_with_the_cause_and_stops_a_plain_chain() -> None:
    lone = Job("x", "t.add", "q", workflow={"w": "wf", "n": [call("y")]})
    assert canvas.after_failure(lone, {"state": "failed"}) == []
    member = Job("m", "t.boom", "q", workflow={"w": "wf", "c": {
        "q": "q", "id": "ch", "i": 0, "cb": "cb", "cbq": "q", "cbt": "t.total", "ttl": 60}})
    [report] = canvas.after_failure(member, {"state": "failed", "exc_type": "ValueError",
                                             "message": "bad", "reason": "error"})
    assert report.failed and report.value.startswith("f")
    written = json.loads(report.failed_record)
    assert written["state"] == "failed" and written["exc_type"] == "ChordFailed"
    assert written["chord_failed"]["job_id"] == "m" and "bad" in written["message"]


def test_a_chord_callback_gets_the_results_in_member_order() -> None:
    job = Job("cb", "t.total", "q", args=(1,), workflow={"w": "wf", "in": {
        "q": "q", "id": "ch", "n": 3}})
    fields = {"r2": "v3", "r0": "v1", "r1": 'f{"__failed__": true}', "left": "0"}
    got = canvas.chord_input(job, lambda q, c, n: canvas.results_of(fields, n))
    assert got.args == ([1, {"__failed__": True}, 3], 1)
    assert got.workflow == {"w": "wf"}  # a retry carries its results inline
    with pytest.raises(LookupError):
        canvas.results_of({"r0": "v1"}, 2)


def test_workflows_that_cannot_be_built_are_refused_with_what_to_do() -> None:
    from supervisor import chain, chord, group, task
    from supervisor.api.canvas import steps_of

    @task(name="t.unit_add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ValueError, match="on_failure must be one of fail, run"):
        chord([add.s(1, 1)], add.s(1), on_failure="ignore")
    with pytest.raises(ValueError, match="a chord needs its callback"):
        steps_of(chord([add.s(1, 1)]), 60)
    with pytest.raises(TypeError, match="a workflow step is a task signature"):
        chain(add.s(1, 1), 5)
    with pytest.raises(ValueError, match="member chain cannot end with a group"):
        steps_of(group(chain(add.s(1, 1), group(add.s(1), add.s(2)))), 60)
    # A chord inside a member chain is one: its callback's result is the member's.
    [outer] = steps_of(group(chain(add.s(1, 1), group(add.s(1), add.s(2)), add.s(3)),
                             add.s(4, 4)), 60)
    inner = outer["g"][0]
    assert ["g" in step for step in inner] == [False, True, False]
    assert inner[1]["p"] == "fail" and inner[1]["home"] == "default"
    with pytest.raises(ValueError, match="put a task between them"):
        steps_of(chain(group(add.s(1, 1)), group(add.s(1))), 60)
    with pytest.raises(ValueError, match="at least one"):
        group([])


def test_the_ends_of_a_workflow_are_counted_where_its_branches_end_or_stop() -> None:
    # A chord then a step (ends: 1), the chain's last step; a trailing group (ends: its
    # members). A failure stops what its chain would still have ended; a member that
    # fails its chord (policy "fail") loses the branches after the callback.
    group = {"g": [[call("m0"), call("m0b")], [call("m1", "t.add", "other")]], "id": "ch",
             "p": "fail", "home": "q"}
    steps = [group, call("cb", "t.total"), call("last")]
    assert canvas.ends(steps) == 1 and canvas.ends([call("a"), dict(group)]) == 2
    effects = canvas.start(steps, canvas.NO_VALUE, CTX, None)
    first = decode(effects[1].message)  # type: ignore[union-attr]
    assert canvas.after_failure(first, {"state": "failed"})[0].end == End(  # type: ignore[union-attr]
        "q", "wf", "cb", 1, True)
    assert not [e for e in canvas.after_success(first, 1) if isinstance(e, End)]
    callback = decode(effects[0].callback.message)  # type: ignore[union-attr]
    assert canvas.after_failure(callback, {"state": "failed"}) == [End("q", "wf", "cb", 1, True)]
    tail = canvas.start([call("a"), {"g": [[call("g0")], [call("g1")]], "id": "t", "p": "fail",
                                     "home": "q"}], canvas.NO_VALUE, CTX, None)
    head = decode(tail[0].message)  # type: ignore[union-attr]
    assert canvas.after_failure(head, {"state": "failed"}) == [End("q", "wf", "a", 2, True)]
    member = decode(canvas.after_success(head, 1)[1].message)  # type: ignore[union-attr]
    assert canvas.after_success(member, 2) == [End("q", "wf", "g1", 1, False)]
    no_tree = Job("x", "t.add", "q", workflow={"w": "wf"})  # no "wq": a workflow without one
    assert canvas.after_success(no_tree, 1) == []


def test_a_step_takes_its_signatures_priority_else_its_tasks_and_none_at_0() -> None:
    from supervisor import task
    from supervisor.api.canvas import steps_of

    @task(name="t.prio_urgent", queue="q", priority=7)
    def urgent(x: int) -> int:
        return x

    @task(name="t.prio_plain", queue="q")
    def plain(x: int) -> int:
        return x

    steps = steps_of(plain.s(1) | urgent.s() | urgent.s().set(priority=0)
                     | plain.s().set(priority=9), 60)
    assert [step.get("pr") for step in steps] == [None, 7, None, 9]  # absent at 0
    # The job carries it, so does what the step before it sets off; and a chord's
    # callback's level reaches the member that ends the chord (Report).
    [first] = canvas.start(steps[1:], canvas.NO_VALUE, CTX, None)
    job = decode(first.message)
    assert job.priority == 7 and first.message.startswith('{"v":1,"pr":7,')
    [after] = canvas.after_success(job, 1)
    assert decode(after.message).priority == 0
    effects = canvas.start([{"g": [[call("m")]], "id": "ch", "p": "fail", "home": "q"},
                            {**call("cb"), "pr": 9}], canvas.NO_VALUE, CTX, None)
    assert isinstance(effects[0], OpenChord) and decode(effects[0].callback.message).priority == 9
    [report] = canvas.after_success(decode(effects[1].message), 3)
    assert isinstance(report, Report) and report.callback_level == 9


def test_a_tasks_expires_is_counted_from_when_each_job_is_made_and_a_callback_has_none(
        ) -> None:
    import time

    brief = {**call("m1", "t.add", "q", 1, 1), "x": 30.0}
    callback = {**call("cb", "t.total"), "x": 30.0}
    group_step = {"g": [[brief], [call("m2", "t.add", "q", 2, 2)]], "id": "ch", "p": "fail",
                  "home": "q"}
    opened, first, second = canvas.start([group_step, callback], canvas.NO_VALUE, CTX, None)
    assert isinstance(opened, OpenChord) and isinstance(first, Enqueue)
    member = decode(first.message)
    assert 29 < member.expires - time.time() <= 30  # made now: 30 s from now
    assert decode(second.message).expires == 0.0  # its task has none
    # Made now, added when the last member ends (maybe later than 30 s): no expires.
    assert decode(opened.callback.message).expires == 0.0
    [next_step] = canvas.start([call("a"), {**call("b", "t.add", "q", 1), "x": 5.0}],
                               canvas.NO_VALUE, CTX, None)
    made = canvas.after_success(decode(next_step.message), 2)[0]
    assert isinstance(made, Enqueue) and 4 < decode(made.message).expires - time.time() <= 5
    # A scheduled workflow's first jobs: counted from when they are due.
    [later] = canvas.scheduled([first], int((time.time() + 100) * 1000))
    assert isinstance(later, Enqueue)
    assert 129 < decode(later.message).expires - time.time() <= 130
    assert json.loads(later.record)["state"] == "scheduled"
