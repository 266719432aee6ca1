"""The dashboard's JSON API against a real two-node cluster: every endpoint, good and bad."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from helpers import wait_until
from node_process import node_env
from redis_server import RedisServer
from ui_harness import TOKEN, UiProcess, dead_job, run_job

from supervisor.api.producer import Producer

NODES = {"ui-node-a", "ui-node-b"}
GETS = ["/api/status", "/api/overview", "/api/workers", "/api/jobs", "/api/dead",
        "/api/schedules", "/api/actions"]


def cli_json(redis_url: str, *args: str) -> object:
    env = node_env(redis_url, 3600, Path(__file__).parent)
    done = subprocess.run([sys.executable, "-m", "supervisor", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("path", GETS)
def test_every_get_needs_the_token(ui_actions: UiProcess, path: str) -> None:
    with ui_actions.client() as good:
        assert good.get(path).status_code == 200
    with ui_actions.client(token="wrong-token") as bad:
        answer = bad.get(path)
    assert answer.status_code == 401
    assert "token" in answer.json()["error"]
    assert httpx.get(ui_actions.url + path).status_code == 401  # none at all


def test_status_is_the_status_json_document(ui_actions: UiProcess,
                                            ui_redis: RedisServer) -> None:
    with ui_actions.client() as api:
        doc = api.get("/api/status").json()
    assert {node["node"] for node in doc["nodes"]} == NODES
    cli = cli_json(ui_redis.url, "status")
    assert isinstance(cli, dict)
    assert set(doc) == set(cli)
    assert set(doc["nodes"][0]) == set(cli["nodes"][0])


def test_overview_totals_and_workers(ui_actions: UiProcess) -> None:
    with ui_actions.client() as api:
        doc = api.get("/api/overview").json()
        workers = api.get("/api/workers").json()
    assert doc["totals"]["nodes"] == 2
    assert doc["totals"]["workers_target"] == 2
    assert all("paused" in row and len(doc["throughput"][row["queue"]]) == 12
               for row in doc["queues"])
    assert {worker["node"] for worker in workers} == NODES
    assert all("rss" in worker and "cpu_percent" in worker for worker in workers)


def test_job_is_what_job_json_prints(ui_actions: UiProcess, producer: Producer,
                                     ui_redis: RedisServer) -> None:
    job_id = run_job(producer, "ui_tasks.add", 2, 3)
    with ui_actions.client() as api:
        doc = api.get(f"/api/jobs/{job_id}").json()
        missing = api.get("/api/jobs/no-such-job")
    cli = cli_json(ui_redis.url, "job", job_id)
    assert isinstance(cli, dict)
    assert {key: doc[key] for key in cli} == cli
    assert doc["result"] == 5 and doc["state"] == "succeeded"
    assert [event["event"] for event in doc["events"]][0] == "enqueued"
    assert missing.status_code == 404 and "no-such-job" in missing.json()["error"]
    assert (doc["args"], doc["kwargs"]) == (cli["args"], cli["kwargs"]) == ([2, 3], {})
    env = node_env(ui_redis.url, 3600, Path(__file__).parent)
    text = subprocess.run([sys.executable, "-m", "supervisor", "job", job_id], env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "args [2, 3]  kwargs {}" in text


def test_a_workflow_id_gives_its_tree(ui_actions: UiProcess, producer: Producer,
                                     ui_redis: RedisServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ui_tasks

    from supervisor import group
    from supervisor.api import producer as module

    monkeypatch.setattr(module, "_producer", producer)
    flow = group(ui_tasks.add.s(i, i) for i in range(3)).delay()
    assert flow.get(timeout=30) == [0, 2, 4]
    with ui_actions.client() as api:
        doc = api.get(f"/api/jobs/{flow.id}").json()
        page = api.get(f"/jobs/{flow.id}")
    cli = cli_json(ui_redis.url, "job", flow.id)
    assert isinstance(cli, dict)
    assert {key: doc[key] for key in cli} == cli
    assert (doc["kind"], doc["state"], doc["workflow"]["counts"]) == (
        "workflow", "succeeded", {"succeeded": 3})
    assert page.status_code == 200 and f"Workflow <span class=\"mono\" id=\"job-id\">{flow.id}" \
        in page.text
    assert flow.children[2].id in page.text


def test_browse_recent_jobs(ui_actions: UiProcess, producer: Producer,
                            rclient: redis.Redis) -> None:
    good = run_job(producer, "ui_tasks.add", 1, 1)
    bad, _ = dead_job(producer, rclient)
    with ui_actions.client() as api:
        succeeded = api.get("/api/jobs", params={"state": "succeeded", "queue": "default"}).json()
        failed = api.get("/api/jobs", params={"state": "failed", "task": "ui_tasks.fragile"}
                         ).json()
        by_task = api.get("/api/jobs", params={"task": "ui_tasks.add", "limit": 500}).json()
        wrong_state = api.get("/api/jobs", params={"state": "exploded"})
        wrong_limit = api.get("/api/jobs", params={"limit": "0"})
    assert good in [row["id"] for row in succeeded]
    assert bad in [row["id"] for row in failed] and bad not in [r["id"] for r in succeeded]
    assert all(row["task"] == "ui_tasks.add" for row in by_task) and good in \
        [row["id"] for row in by_task]
    assert wrong_state.status_code == 400 and "exploded" in wrong_state.json()["error"]
    assert wrong_limit.status_code == 400


def test_dead_letters_list_and_one(ui_actions: UiProcess, producer: Producer,
                                   rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient, "<b>note</b>")
    with ui_actions.client() as api:
        rows = api.get("/api/dead", params={"task": "ui_tasks.fragile",
                                            "reason": "error"}).json()
        none = api.get("/api/dead", params={"task": "no.such.task"}).json()
        letter = api.get(f"/api/dead/{job_id}").json()
        missing = api.get("/api/dead/no-such-job")
        bad_limit = api.get("/api/dead", params={"limit": "many"})
    assert job_id in [row["id"] for row in rows]
    assert all("traceback" not in row for row in rows)
    assert none == []
    assert letter["args"][1] == "<b>note</b>" and "RuntimeError" in letter["traceback"]
    assert missing.status_code == 404
    assert bad_limit.status_code == 400


def test_schedules_published_by_the_workers(ui_actions: UiProcess) -> None:
    with ui_actions.client() as api:
        rows = wait_until(lambda: api.get("/api/schedules").json(), 20,
                          what="the nodes published their schedule")
    row = next(row for row in rows if row["name"] == "ui-hourly")
    assert row["task"] == "ui_tasks.hourly" and row["every"] == 3600
    assert row["next_fire_utc"] is not None and "published by ui-node-" in row["source"]


def test_actions_listed(ui_actions: UiProcess, ui_readonly: UiProcess) -> None:
    with ui_actions.client() as on, ui_readonly.client() as off:
        names = {row["name"]: row["enabled"] for row in on.get("/api/actions").json()}
        disabled = {row["enabled"] for row in off.get("/api/actions").json()}
    assert names == {"requeue": True, "requeue_all": True, "purge": True, "cancel": True,
                     "pause": True, "resume": True, "retry_now": True}
    assert disabled == {False}


def test_requeue_action(ui_actions: UiProcess, producer: Producer,
                        rclient: redis.Redis) -> None:
    job_id, switch = dead_job(producer, rclient)
    rclient.delete(switch)
    with ui_actions.client() as api:
        done = api.post("/api/actions/requeue", json={"job_id": job_id})
        again = api.post("/api/actions/requeue", json={"job_id": job_id})
        missing_param = api.post("/api/actions/requeue", json={})
        unknown = api.post("/api/actions/explode", json={})
    assert done.status_code == 200 and done.json()["requeued"] == [job_id]
    wait_until(lambda: producer.client.get(f"sv:{{default}}:job:{job_id}") and
               '"succeeded"' in producer.client.get(f"sv:{{default}}:job:{job_id}"), 20,
               what="the requeued job succeeded")
    assert again.status_code == 404  # its dead letter is gone
    assert missing_param.status_code == 400 and "job_id" in missing_param.json()["error"]
    assert unknown.status_code == 404



def test_requeue_all_action(ui_actions: UiProcess, producer: Producer,
                            rclient: redis.Redis) -> None:
    first, switch_one = dead_job(producer, rclient, "all")
    second, switch_two = dead_job(producer, rclient, "all")
    rclient.delete(switch_one, switch_two)
    with ui_actions.client() as api:
        done = api.post("/api/actions/requeue_all",
                        json={"queue": "default", "task": "ui_tasks.fragile"})
        unknown_queue = api.post("/api/actions/requeue_all", json={"queue": "no-such-queue"})
    assert done.status_code == 200
    assert {first, second} <= set(done.json()["requeued"])
    for job_id in (first, second):
        wait_until(lambda job_id=job_id: '"succeeded"' in (
            producer.client.get(f"sv:{{default}}:job:{job_id}") or ""), 20,
            what=f"requeued job {job_id} succeeded")
    assert unknown_queue.status_code == 404 and "no-such-queue" in unknown_queue.json()["error"]


def test_purge_action(ui_actions: UiProcess, producer: Producer, rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient, "purge")
    with ui_actions.client() as api:
        done = api.post("/api/actions/purge", json={"queue": "default"})
        gone = api.get(f"/api/dead/{job_id}")
        unknown_queue = api.post("/api/actions/purge", json={"queue": "no-such-queue"})
    assert done.status_code == 200 and done.json()["purged"] >= 1
    assert gone.status_code == 404
    assert unknown_queue.status_code == 404


def test_resume_action_bad_requests(ui_actions: UiProcess) -> None:
    with ui_actions.client() as api:
        missing = api.post("/api/actions/resume", json={})
        unknown_queue = api.post("/api/actions/resume", json={"queue": "no-such-queue"})
    assert missing.status_code == 400 and "queue" in missing.json()["error"]
    assert unknown_queue.status_code == 404

def test_cancel_pause_and_resume_actions(ui_actions: UiProcess, producer: Producer,
                                         rclient: redis.Redis) -> None:
    later = producer.submit_named("ui_tasks.add", "default", (1, 2), {}, countdown=3600)
    with ui_actions.client() as api:
        paused = api.post("/api/actions/pause", json={"queue": "default"})
        assert rclient.exists("sv:{default}:paused")
        resumed = api.post("/api/actions/resume", json={"queue": "default"})
        cancelled = api.post("/api/actions/cancel", json={"job_id": later.id})
        again = api.post("/api/actions/cancel", json={"job_id": later.id})
        unknown = api.post("/api/actions/cancel", json={"job_id": "no-such-job"})
        no_queue = api.post("/api/actions/pause", json={"queue": "no-such-queue"})
        browsed = api.get("/api/jobs", params={"state": "cancelled"}).json()
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert resumed.status_code == 200 and resumed.json()["was_paused"] is True
    assert not rclient.exists("sv:{default}:paused")
    assert cancelled.json()["result"] == "cancelled" and later.state == "cancelled"
    assert later.info()["cancelled"]["by"] == "dashboard"
    assert (again.json()["result"], again.json()["state"]) == ("ended", "cancelled")
    assert unknown.status_code == 404 and no_queue.status_code == 404
    assert [(row["id"], row["state"]) for row in browsed] == [(later.id, "cancelled")]


def test_retry_now_action_runs_a_scheduled_job_at_once(
        ui_actions: UiProcess, producer: Producer, rclient: redis.Redis) -> None:
    # An explicit id with glob characters: the delayed set is scanned with MATCH.
    later = producer.submit_named("ui_tasks.add", "default", (2, 3), {}, countdown=3600,
                                  job_id="later*[1]?")
    with ui_actions.client() as api:
        page = api.get(f"/jobs/{quote(later.id, safe='')}")
        now = api.post("/api/actions/retry_now", json={"job_id": later.id})
        assert now.status_code == 200, now.text
        assert later.get(timeout=30) == 5, "run at once, not in an hour"
        ended = api.post("/api/actions/retry_now", json={"job_id": later.id})
        unknown = api.post("/api/actions/retry_now", json={"job_id": "no-such-job"})
    assert "Retry now" in page.text
    assert ended.status_code == 404 and "not waiting for its time" in ended.text
    assert unknown.status_code == 404


def test_action_refused_when_read_only_or_without_token(
        ui_readonly: UiProcess, ui_actions: UiProcess, producer: Producer,
        rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient)
    with ui_readonly.client() as api:
        off = api.post("/api/actions/requeue", json={"job_id": job_id})
    with ui_actions.client(token="wrong-token") as api:
        wrong = api.post("/api/actions/requeue", json={"job_id": job_id})
    assert off.status_code == 403 and "--allow-actions" in off.json()["error"]
    assert wrong.status_code == 401
    assert "refused: actions are off" in ui_readonly.log_text() or \
        "actions are off" in ui_readonly.log_text()
    with ui_actions.client() as api:
        assert api.get(f"/api/dead/{job_id}").status_code == 200  # nothing was done


def test_action_with_the_cookie_needs_csrf_and_same_origin(
        ui_actions: UiProcess, producer: Producer, rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient)
    with httpx.Client(base_url=ui_actions.url, timeout=10) as browser:
        login_page = browser.get("/login")
        csrf = browser.cookies["sv_csrf"]
        assert login_page.status_code == 200
        logged = browser.post("/login", data={"token": TOKEN, "csrf": csrf, "next": "/"})
        assert logged.status_code == 303 and "sv_session" in browser.cookies
        no_csrf = browser.post("/api/actions/requeue", data={"job_id": job_id})
        wrong_csrf = browser.post("/api/actions/requeue", data={"job_id": job_id,
                                                                "csrf": "forged"})
        elsewhere = browser.post("/api/actions/requeue", data={"job_id": job_id, "csrf": csrf},
                                 headers={"Origin": "https://evil.example"})
        assert (no_csrf.status_code, wrong_csrf.status_code, elsewhere.status_code) == \
            (403, 403, 403)
        assert browser.get(f"/api/dead/{job_id}").status_code == 200  # still there
        form = browser.post("/api/actions/requeue", data={"job_id": job_id, "csrf": csrf,
                                                          "next": "/dead"})
        assert form.status_code == 303 and form.headers["location"] == "/dead"
        shown = browser.get("/dead")
        assert "requeued 1 job(s)" in shown.text  # once: the message cookie is spent
        assert "requeued 1 job(s)" not in browser.get("/dead").text
        # A link cannot put words in the dashboard's mouth.
        assert "forged news" not in browser.get("/dead?msg=forged+news").text
    assert f"action requeue {{'job_id': '{job_id}'}} by 127.0.0.1 (cookie)" in \
        ui_actions.log_text()


def test_bad_login(ui_actions: UiProcess) -> None:
    with httpx.Client(base_url=ui_actions.url, timeout=10) as browser:
        browser.get("/login")
        wrong = browser.post("/login", data={"token": "nope-nope", "csrf":
                                             browser.cookies["sv_csrf"]})
        page = browser.get("/")
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    assert page.status_code == 303 and "/login?next=" in page.headers["location"]


def test_an_id_in_two_queues_needs_the_queue(ui_actions: UiProcess,
                                             producer: Producer) -> None:
    job_id = f"twin-{time.monotonic_ns()}"
    for queue in ("default", "reports"):
        producer.submit_named("ui_tasks.add", queue, (1, 2), {}, job_id=job_id)
    with ui_actions.client() as api:
        wait_until(lambda: all(api.get(f"/api/jobs/{job_id}", params={"queue": queue}
                                       ).json().get("state") == "succeeded"
                               for queue in ("default", "reports")), 30,
                   what="both twins ran")
        ambiguous = api.get(f"/api/jobs/{job_id}")
        one = api.get(f"/api/jobs/{job_id}", params={"queue": "reports"}).json()
    assert ambiguous.status_code == 409 and "?queue=" in ambiguous.json()["error"]
    assert one["queue"] == "reports"


def test_job_page_shows_its_workflow_tree(ui_actions: UiProcess, producer: Producer) -> None:
    import ui_tasks

    from supervisor.api import producer as module

    before = module._producer
    module._producer = producer  # delay() of the workflow goes to the dashboard's Redis
    try:
        last = (ui_tasks.add.s(2, 3) | ui_tasks.add.s(1)).delay()
        assert last.get(timeout=30) == 6
    finally:
        module._producer = before
    first = last.parent
    with ui_actions.client() as api:
        doc = api.get(f"/api/jobs/{first.id}").json()
        page = api.get(f"/jobs/{quote(last.id, safe='')}").text
    assert doc["workflow"]["counts"] == {"succeeded": 2}
    assert [step["id"] for step in doc["workflow"]["steps"]] == [first.id, last.id]
    assert 'id="workflow"' in page and first.id in page and "(this job)" in page
