"""The dashboard in a real headless Chromium (Debian's), against a real two-node cluster.

Screenshots of every test land in tmp/artifacts/ (not committed).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import wait_until
from node_process import Node
from playwright.sync_api import Browser, Page, expect, sync_playwright
from redis_server import RedisServer
from ui_harness import ARTIFACTS, TOKEN, UiProcess, dead_job, run_job

from supervisor.api.producer import Producer
from supervisor.config import load_config
from supervisor.core.record import ARGS_PREVIEW_CHARS

CHROMIUM = "/usr/bin/chromium"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.dialogs = dialogs  # type: ignore[attr-defined]
    yield opened
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def log_in(page: Page, ui: UiProcess, token: str = TOKEN) -> None:
    page.goto(ui.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=token]", token)
    page.click("#login button[type=submit]")


def test_overview_shows_both_nodes_and_follows_the_cluster(
        page: Page, ui_actions: UiProcess, producer: Producer, rclient: redis.Redis) -> None:
    for index in range(20):
        run_job(producer, "ui_tasks.add", index, 1, queue=("default", "reports")[index % 2])
    log_in(page, ui_actions)
    expect(page).to_have_url(ui_actions.url + "/")
    for name in ("ui-node-a", "ui-node-b"):
        row = page.locator(f"#nodes tr[data-node='{name}']")
        expect(row).to_be_visible()
        expect(row.locator(".status")).to_have_text("alive")
    expect(page.locator("#total-nodes")).to_have_text("2/2")
    expect(page.locator("#queues tr[data-queue='default']")).to_be_visible()
    expect(page.locator("#queues tr[data-queue='reports']")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "overview.png"))
    # Live: a job dies meanwhile, and the page shows it without being reloaded.
    dead_total = page.locator("#total-dead")
    before = int(dead_total.inner_text())
    page.evaluate("window.notReloaded = true")
    dead_job(producer, rclient)
    expect(dead_total).to_have_text(str(before + 1))
    assert page.evaluate("window.notReloaded") is True
    page.click("nav >> text=Workers")
    expect(page.locator("#workers tbody tr")).to_have_count(2)


def test_look_up_a_job_and_read_its_timeline(page: Page, ui_actions: UiProcess,
                                             producer: Producer) -> None:
    job_id = run_job(producer, "ui_tasks.add", 20, 22)
    log_in(page, ui_actions)
    page.click("nav >> text=Jobs")
    page.fill("#lookup input[name=id]", job_id)
    page.click("#lookup button")
    expect(page.locator("#job-id")).to_have_text(job_id)
    expect(page.locator("#job-state")).to_have_text("succeeded")
    expect(page.locator("#job-result")).to_have_text("42")
    events = page.locator("#timeline tbody tr td:nth-child(2)")
    expect(events).to_have_text(["enqueued", "started", "succeeded", "succeeded"])
    expect(page.locator("#timeline tr.event-started")).to_contain_text("ui-node-")


def test_requeue_a_dead_letter_with_actions_on(page: Page, ui_actions: UiProcess,
                                               producer: Producer,
                                               rclient: redis.Redis) -> None:
    job_id, switch = dead_job(producer, rclient)
    log_in(page, ui_actions)
    page.goto(ui_actions.url + "/dead?task=ui_tasks.fragile")
    row = page.locator(f"#dead tr[data-job='{job_id}']")
    expect(row).to_contain_text("RuntimeError")
    rclient.delete(switch)  # the job can succeed now
    row.locator("button[data-action=requeue]").click()
    expect(page.locator("#msg")).to_have_text("requeued 1 job(s)")
    expect(page.locator(f"#dead tr[data-job='{job_id}']")).to_have_count(0)
    page.goto(ui_actions.url + f"/jobs/{job_id}")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=30_000)
    assert f"action requeue {{'job_id': '{job_id}', 'queue': 'default'}} by 127.0.0.1 " \
           "(cookie)" in ui_actions.log_text()


def test_actions_refused_when_read_only(page: Page, ui_readonly: UiProcess,
                                        producer: Producer, rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient)
    log_in(page, ui_readonly)
    page.goto(ui_readonly.url + "/dead?task=ui_tasks.fragile")
    expect(page.locator(f"#dead tr[data-job='{job_id}']")).to_be_visible()
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("button[data-action]")).to_have_count(0)
    # What a button would send, sent anyway (with the page's own CSRF value):
    answer = page.evaluate("""async (jobId) => {
        const csrf = document.querySelector("meta[name=csrf-token]").content;
        const r = await fetch("/api/actions/requeue",
            {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
             body: JSON.stringify({job_id: jobId})});
        return [r.status, (await r.json()).error];
    }""", job_id)
    assert answer[0] == 403 and "--allow-actions" in answer[1]
    page.reload()
    expect(page.locator(f"#dead tr[data-job='{job_id}']")).to_be_visible()


def test_refused_without_the_token(page: Page, ui_actions: UiProcess) -> None:
    page.goto(ui_actions.url + "/dead")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fdead"))
    page.fill("input[name=token]", "not-the-token")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("wrong token")
    status = page.evaluate("""async () => (await fetch("/api/actions/purge",
        {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"})).status""")
    assert status == 401
    page.fill("input[name=token]", TOKEN)
    page.click("#login button[type=submit]")
    expect(page).to_have_url(ui_actions.url + "/dead")


def test_a_script_in_the_arguments_renders_as_text(page: Page, ui_actions: UiProcess,
                                                   producer: Producer,
                                                   rclient: redis.Redis) -> None:
    job_id, _ = dead_job(producer, rclient, SCRIPT)
    log_in(page, ui_actions)
    page.goto(ui_actions.url + f"/dead/{job_id}")
    expect(page.locator("#letter-args")).to_contain_text(SCRIPT)
    page.goto(ui_actions.url + f"/jobs/{job_id}")
    expect(page.locator("#job-args")).to_contain_text(SCRIPT)
    expect(page.locator("#traceback")).to_contain_text("RuntimeError")
    assert page.locator("main script").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


def _job_page_args(page: Page, ui: UiProcess, job_id: str) -> str:
    page.goto(ui.url + f"/jobs/{job_id}")
    return page.locator("#job-args").inner_text()


def test_every_job_page_shows_its_arguments_and_progress(
        page: Page, ui_actions: UiProcess, producer: Producer, rclient: redis.Redis) -> None:
    """Queued, running, succeeded and failed: the record keeps the arguments, so the API
    and the page show them in every state, not only for a dead letter."""
    queued = producer.submit_named("ui_tasks.add", "parked", (7, 8), {})  # no node reads it
    switch = f"ui:slow:{time.monotonic_ns()}"
    rclient.set(switch, "1")
    running = producer.submit_named("ui_tasks.slow", "default", (switch,), {"note": "run"})
    try:
        wait_until(lambda: running.state == "started" and running.progress is not None, 30,
                   what="the slow job runs and reported its progress")
        succeeded = run_job(producer, "ui_tasks.add", 40, 2)
        failed, failed_switch = dead_job(producer, rclient, "bad")
        expected = {queued.id: ([7, 8], {}), running.id: ([switch], {"note": "run"}),
                    succeeded: ([40, 2], {}), failed: ([failed_switch, "bad"], {})}
        log_in(page, ui_actions)
        with ui_actions.client() as api:
            for job_id, (args, kwargs) in expected.items():
                doc = api.get(f"/api/jobs/{job_id}").json()
                assert (doc["args"], doc["kwargs"]) == (args, kwargs), doc["state"]
                shown = _job_page_args(page, ui_actions, job_id)
                assert json.dumps(args) in shown and json.dumps(kwargs) in shown
            assert api.get(f"/api/jobs/{running.id}").json()["state"] == "started"
        page.goto(ui_actions.url + f"/jobs/{running.id}")
        expect(page.locator("#job-progress")).to_contain_text('0.5 {"step": "half"}')
    finally:
        rclient.delete(switch)


def test_a_huge_argument_is_kept_as_a_truncated_preview(
        page: Page, ui_actions: UiProcess, producer: Producer) -> None:
    job_id = run_job(producer, "ui_tasks.add", "x" * 10_000, "y")  # "x..." + "y" succeeds
    with ui_actions.client() as api:
        doc = api.get(f"/api/jobs/{job_id}").json()
    assert doc["args"] is None and doc["args_chars"] > 10_000
    assert doc["args_preview"].startswith('[["' + "x" * 100)
    assert len(doc["args_preview"]) == ARGS_PREVIEW_CHARS
    log_in(page, ui_actions)
    page.goto(ui_actions.url + f"/jobs/{job_id}")
    expect(page.locator("#job-args-truncated")).to_contain_text(
        f"the first {ARGS_PREVIEW_CHARS} of {doc['args_chars']} characters")


def test_workers_page_shows_every_job_of_a_concurrency_worker(
        page: Page, tmp_path: Path) -> None:
    """A `--concurrency 2` worker runs two slow jobs: its row lists both, each with for how
    long. A Redis of its own: the session's cluster stays at two nodes for the others."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    node = Node("ui-node-k2", workers=1, redis_url=server.url, log_dir=tmp_path,
                heartbeat_timeout=3, result_ttl=3600, tasks="ui_tasks", queues="default",
                cwd=Path(__file__).resolve().parent, options=("--concurrency", "2"))
    client = redis.Redis.from_url(server.url, decode_responses=True)
    switch = "ui:k2:switch"
    client.set(switch, "1")
    try:
        node.start()
        node.wait_ready(60)
        producer = Producer(load_config({"redis_url": server.url}, env={}))
        jobs = [producer.submit_named("ui_tasks.slow", "default", (switch,), {})
                for _ in range(2)]
        wait_until(lambda: all(job.state == "started" for job in jobs), 30,
                   what="both slow jobs run at once")
        ui = UiProcess(server.url, tmp_path).start()
        try:
            page.goto(ui.url + "/workers")
            row = page.locator("#workers tbody tr")
            expect(row).to_have_count(1)
            for job in jobs:
                expect(row.locator(".running-job", has_text=job.id)).to_contain_text(
                    "ui_tasks.slow")
            expect(row.locator(".running-job")).to_have_count(2)
            expect(row.locator(".running-job").first).to_contain_text("for ")
        finally:
            ui.stop()
    finally:
        client.delete(switch)
        if node.running:
            node.send(signal.SIGTERM)
        if node.process is not None:
            try:
                node.process.wait(30)
            except Exception:  # noqa: BLE001 - a stuck node is killed, not left behind
                node.kill_group()
        server.stop()


def test_jobs_browse_page_follows_new_jobs_without_a_reload(
        page: Page, ui_actions: UiProcess, producer: Producer) -> None:
    log_in(page, ui_actions)
    page.goto(ui_actions.url + "/jobs?queue=reports&state=succeeded")
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again
    job_id = run_job(producer, "ui_tasks.add", 1, 2, queue="reports")
    expect(page.locator("#jobs")).to_contain_text(job_id)
    assert page.evaluate("window.notReloaded") is True
