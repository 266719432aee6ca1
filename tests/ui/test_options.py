"""`supervisor ui` options: --base-path, no token (loopback), the security headers."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from redis_server import RedisServer
from ui_harness import UiProcess


def test_base_path_without_token(ui_redis: RedisServer, tmp_path: Path) -> None:
    ui = UiProcess(ui_redis.url, tmp_path, "--base-path", "/sv/", "--allow-actions").start()
    try:
        root = f"http://127.0.0.1:{ui.port}"
        with httpx.Client(timeout=10) as http:
            assert http.get(root + "/").headers["location"] == "/sv/"
            page = http.get(root + "/sv/dead")
            assert page.status_code == 200 and 'href="/sv/static/style.css"' in page.text
            assert http.get(root + "/sv/api/status").status_code == 200
            assert http.get(root + "/api/status").status_code == 404  # only under the prefix
            assert http.get(root + "/sv/login").headers["location"] == "/sv/"  # no token
            # No token, but a browser's POST still needs the page's CSRF value.
            refused = http.post(root + "/sv/api/actions/purge", json={"queue": "nope"})
            assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
            csrf = http.cookies["sv_csrf"]
            unknown = http.post(root + "/sv/api/actions/purge", json={"queue": "nope"},
                                headers={"X-CSRF-Token": csrf})
            assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
            assert page.headers["x-frame-options"] == "DENY"
            assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        ui.stop()
    # SIGTERM stops it gracefully; uvicorn then ends by that signal (as systemd expects).
    assert ui.process is not None and ui.process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in ui.log_text()


def test_host_header_of_another_name_is_refused(ui_redis: RedisServer, tmp_path: Path) -> None:
    """DNS rebinding: a page of evil.com whose name now points at 127.0.0.1 sends
    Host: evil.com; the dashboard answers it 400, and the names it is reached by 200."""
    ui = UiProcess(ui_redis.url, tmp_path, "--allowed-host", "dash.example").start()
    try:
        root = f"http://127.0.0.1:{ui.port}"
        with httpx.Client(timeout=10) as http:
            evil = http.get(root + "/api/status", headers={"Host": "evil.com"})
            assert evil.status_code == 400
            assert evil.headers["x-frame-options"] == "DENY"  # still with the headers
            for host in (f"127.0.0.1:{ui.port}", f"localhost:{ui.port}", "dash.example"):
                assert http.get(root + "/api/status", headers={"Host": host}).status_code == 200
    finally:
        ui.stop()


def test_token_file_process_logs_in_with_that_token(ui_redis: RedisServer,
                                                    tmp_path: Path) -> None:
    token_file = tmp_path / "ui-token"
    token_file.write_text("file-token-0123456789\nignored second line\n")
    ui = UiProcess(ui_redis.url, tmp_path, "--token-file", str(token_file)).start()
    try:
        with httpx.Client(base_url=ui.url, timeout=10) as http:
            assert http.get("/api/status").status_code == 401
            form = http.get("/login")
            assert form.status_code == 200
            csrf = http.cookies["sv_csrf"]
            wrong = http.post("/login", data={"token": "not-the-token", "csrf": csrf})
            assert wrong.status_code == 401
            done = http.post("/login", data={"token": "file-token-0123456789", "csrf": csrf,
                                             "next": "/workers"})
            assert done.status_code == 303 and done.headers["location"] == "/workers"
            assert http.get("/api/status").status_code == 200  # the session cookie
        header = {"Authorization": "Bearer file-token-0123456789"}
        assert httpx.get(ui.url + "/api/status", headers=header, timeout=10).status_code == 200
    finally:
        ui.stop()


def test_public_bind_with_a_token_answers_any_host_name(ui_redis: RedisServer,
                                                        tmp_path: Path) -> None:
    ui = UiProcess(ui_redis.url, tmp_path, "--bind", "0.0.0.0", token="public-token-42").start()
    try:
        header = {"Authorization": "Bearer public-token-42", "Host": "node-7.internal"}
        with httpx.Client(timeout=10) as http:
            assert http.get(ui.url + "/api/status", headers=header).status_code == 200
            assert http.get(ui.url + "/api/status",
                            headers={"Host": "node-7.internal"}).status_code == 401
    finally:
        ui.stop()
