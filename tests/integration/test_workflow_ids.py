"""A workflow as a whole, against real worker processes and a real Redis: its id on the
handles and in `supervisor job`, and the counts of workflows in `status` (running,
succeeded, failed), finished by the settle of the job that ends the last branch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
import workflow_tasks as wt
from helpers import wait_until

from supervisor import TaskFailed, chain, chord, group
from supervisor.ui import data

pytestmark = pytest.mark.usefixtures("producer")
BOTH = f"default,{wt.OTHER}"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def cli(redis_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"SUPERVISOR_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "supervisor", *args], capture_output=True,
                          text=True, env=env, check=check, timeout=60)


def test_supervisor_job_of_a_workflow_id_shows_its_tree(
        start_worker: Callable[..., Any], redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH)
    grouped = group(wt.add.s(i, i) for i in range(3)).delay()
    assert grouped.get(timeout=20) == [0, 2, 4]
    assert grouped.workflow_id == grouped.id  # Celery's GroupResult.id names the group
    doc = json.loads(cli(redis_url, "job", grouped.id, "--json").stdout)
    assert (doc["kind"], doc["id"], doc["state"], doc["queue"]) == (
        "workflow", grouped.id, "succeeded", "default")
    tree = doc["workflow"]
    assert (tree["id"], tree["members"], tree["counts"]) == (grouped.id, 3, {"succeeded": 3})
    assert [m[0]["id"] for m in tree["steps"][0]["members"]] == [
        child.id for child in grouped.children]
    # A member's document names the same workflow and tree.
    member = json.loads(cli(redis_url, "job", grouped.children[1].id, "--json").stdout)
    assert member["kind"] == "job" and member["workflow"] == tree
    # A chain's handle is its last step (as Celery's); the whole chain has its own id.
    chained = (wt.add.s(1, 1) | wt.always_fails.s() | wt.add.s(1)).delay()
    with pytest.raises(TaskFailed):
        chained.parent.get(timeout=20)
    assert chained.workflow_id not in (chained.id, chained.parent.id)
    text = cli(redis_url, "job", chained.workflow_id).stdout
    assert text.startswith(f"workflow {chained.workflow_id} failed  (3 members: ")
    assert f"workflow_tasks.always_fails {chained.parent.id} [default] failed" in text
    assert f"workflow_tasks.add {chained.id} [default] unknown" in text  # never made
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    shown = data.job(client, chained.workflow_id)  # the dashboard's /api/jobs/<id>
    assert (shown["kind"], shown["state"], shown["workflow"]["counts"]) == (
        "workflow", "failed", {"succeeded": 1, "failed": 1, "unknown": 1})
    # A group inside a workflow (here a chord's header) is found by its id too.
    chorded = chord([wt.add.s(1, 1), wt.add.s(2, 2)], wt.total.s()).delay()
    assert chorded.get(timeout=20) == 6
    header = json.loads(cli(redis_url, "job", chorded.parent.id, "--json").stdout)
    assert (header["kind"], header["id"], header["workflow"]["id"], header["state"]) == (
        "workflow", chorded.parent.id, chorded.workflow_id, "succeeded")
    assert header["workflow"]["counts"] == {"succeeded": 3}
    # An unknown id: the same one-line error as before, not a traceback.
    missing = cli(redis_url, "job", "no-such-thing", check=False)
    assert missing.returncode != 0 and "no job 'no-such-thing'" in missing.stderr
    assert "Traceback" not in missing.stderr


def counts(redis_url: str) -> dict[str, tuple[int, int, int]]:
    doc = json.loads(cli(redis_url, "status", "--json").stdout)
    return {row["queue"]: (row["workflows_running"], row["workflows_succeeded"],
                           row["workflows_failed"]) for row in doc["queues"]}


def test_status_counts_workflows_running_succeeded_and_failed(
        start_worker: Callable[..., Any], client: redis.Redis, redis_url: str) -> None:
    start_worker(tasks="workflow_tasks", queues=BOTH, SUPERVISOR_CONCURRENCY="4")
    # Counted in the queue of each workflow's first job (where its tree is kept).
    waiting = [chord([wt.wait_for.si("wf:count"), wt.add.s(1, 1)], wt.collect.s()).delay(),
               group(wt.wait_for.si("wf:count"), wt.add.s(2, 2)).delay(),
               chain(wt.add_other.s(1, 1), wt.wait_for.si("wf:count")).delay()]
    wait_until(lambda: counts(redis_url).get("default", (0,))[0] == 2
               and counts(redis_url).get(wt.OTHER, (0,))[0] == 1, timeout=20,
               what="three workflows running")
    # Ends in another queue than the tree's (a forward); a chain that stops at a
    # failure; a chord failed by a member (its callback's branch lost), its tree in the
    # other queue and the chord in this one (that loss is forwarded too).
    assert (wt.add.s(1, 2) | wt.add_other.s(3)).delay().get(timeout=20) == 6
    with pytest.raises(TaskFailed):
        (wt.add.s(1, 1) | wt.always_fails.s() | wt.add.s(1)).delay().parent.get(timeout=20)
    failed = chord([wt.add_other.s(1, 1), wt.always_fails.s(5)], wt.total.s()).delay()
    with pytest.raises(TaskFailed):
        failed.get(timeout=20)
    wait_until(lambda: counts(redis_url) == {"default": (2, 1, 1), wt.OTHER: (1, 0, 1)},
               timeout=20, what="one succeeded, two failed, three running")
    assert "workflows: 2 running, 1 succeeded, 1 failed" in cli(redis_url, "status").stdout
    client.set("wf:count", "1")
    assert waiting[0].get(timeout=20) == ["wf:count", 2]
    assert waiting[1].get(timeout=20) == ["wf:count", 4]
    assert waiting[2].get(timeout=20) == "wf:count"
    wait_until(lambda: counts(redis_url) == {"default": (0, 3, 1), wt.OTHER: (0, 1, 1)},
               timeout=20, what="every workflow finished")
    queues = json.loads(cli(redis_url, "queues", "--json").stdout)
    assert {row["queue"]: row["workflows_succeeded"] for row in queues} == {
        "default": 3, wt.OTHER: 1}
