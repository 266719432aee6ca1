"""`make run` (tasks/demo.py) on an embedded server of its own: its summary adds up, it
explains its one dead letter, points at `supervisor dead list`, and stops the server it
started. Also the packaging metadata `make` installs from."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import psutil
from helpers import wait_until

from supervisor.broker.embedded import server_running

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_adds_up_explains_itself_and_stops_its_server(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({"SUPERVISOR_REDIS_URL": f"embedded://{data}", "PYTHONPATH": str(ROOT),
                "COLUMNS": "100"})
    done = subprocess.run([sys.executable, "-m", "tasks.demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    header = re.search(r"workers, ([\d,]+) jobs:", out)
    assert header, out
    total = int(header.group(1).replace(",", ""))
    row = re.search(r"│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│", out)
    assert row, out
    jobs, succeeded, failed, unfinished = map(int, row.groups())
    assert (jobs, succeeded + failed, failed, unfinished) == (total, total, 1, 0), out
    assert "the 1 failed job is build_report(''), rejected on purpose" in out
    hint = [line for line in out.splitlines() if "supervisor dead list" in line]
    assert hint and f"--redis-url embedded://{data}" in hint[0], out
    assert "stopped the embedded server the demo started" in out
    wait_until(lambda: not server_running(data), timeout=10, what="embedded server gone")

    def server_processes() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if str(data) in " ".join(process.info["cmdline"] or []):
                found.append(process)
        return found

    wait_until(lambda: not server_processes(), timeout=10, what="its process gone")


def test_the_license_is_an_spdx_string_for_setuptools_77() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert not any("License ::" in item for item in project["project"].get("classifiers", []))
    requires = project["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", item)
               and int(item.split(">=")[1].split(".")[0]) >= 77 for item in requires), requires
