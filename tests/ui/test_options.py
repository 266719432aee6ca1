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
