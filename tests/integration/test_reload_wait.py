"""`supervisor reload --wait`: returns once the new generation serves, fails with the
reason's exit code when the reload is refused; STATUS= says the last reload failed
until one succeeds. A real master with real workers; no Redis in the reload path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from master_harness import MasterProcess

from supervisor.api.producer import Producer
from supervisor.config import load_config
from supervisor.errors import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REDIS_REFUSED,
    EXIT_TASK_IMPORT,
    EXIT_USAGE,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TASKS = """
from pathlib import Path

from supervisor import task

if Path("broken").exists():
    raise RuntimeError("broken deploy")
VERSION = Path("version").read_text()


@task
def version() -> str:
    return VERSION
"""


@pytest.fixture
def master(tmp_path: Path, redis_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[MasterProcess]:
    monkeypatch.delenv("SUPERVISOR_REDIS_URL")  # the config file names the Redis
    (tmp_path / "rtasks.py").write_text(TASKS)
    (tmp_path / "version").write_text("v1")
    (tmp_path / "supervisor.toml").write_text(f'redis-url = "{redis_url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env["PYTHONPATH"] = str(ROOT)
    started = MasterProcess([sys.executable, "-m", "supervisor", "run", "--workers", "2",
                             "--tasks", "rtasks", "--config", str(tmp_path / "supervisor.toml"),
                             "--pidfile", str(tmp_path / "run" / "master.pid")], tmp_path, env)
    started.notify.wait_for("READY=1", timeout=30)
    yield started
    started.stop()


def reload(cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    return subprocess.run([sys.executable, "-m", "supervisor", "reload", "--pidfile",
                           str(cwd / "run" / "master.pid"), *options], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def last_status(master: MasterProcess) -> str:
    found = [line for message in master.notify.poll() for line in message
             if line.startswith("STATUS=")]
    return found[-1] if found else ""


def test_reload_wait_reports_each_outcome(master: MasterProcess, tmp_path: Path,
                                          redis_url: str) -> None:
    producer = Producer(load_config({"redis_url": redis_url}))

    def version() -> str:
        return str(producer.submit_named("rtasks.version", "default", (), {}).get(timeout=20))

    assert version() == "v1"
    (tmp_path / "version").write_text("v2")
    done = reload(tmp_path, "--wait")
    assert (done.returncode, done.stdout) == (EXIT_OK, "reloaded: generation 2 is serving\n"), \
        done.stderr
    assert "RELOADING=1" in master.notify.states()
    old_pids = master.wait_children(2)  # generation 1 has left
    assert version() == "v2"  # returned once the new generation served

    (tmp_path / "broken").write_text("")
    broken = reload(tmp_path, "--wait")
    assert broken.returncode == EXIT_TASK_IMPORT, broken.stderr
    assert "could not import the task modules rtasks" in broken.stderr
    assert "broken deploy" in broken.stderr and "keeps serving" in broken.stderr
    wait_until(lambda: master.child_pids() == old_pids, timeout=20,
               what="the failed generation is gone, the old one serves")
    assert version() == "v2"  # a job done: the status line changes ...
    wait_until(lambda: "3 jobs done" in last_status(master), timeout=20)
    assert last_status(master).startswith("STATUS=last reload failed: ")  # ... and says so still

    (tmp_path / "supervisor.toml").write_text("workers = \n")  # not TOML
    refused = reload(tmp_path, "--wait")
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "configuration refused" in refused.stderr and "not valid TOML" in refused.stderr

    port = redis_url.rsplit(":", 1)[1]
    (tmp_path / "supervisor.toml").write_text(f'redis-url = "redis://nobody:x@127.0.0.1:{port}"\n')
    (tmp_path / "broken").unlink()
    wrong = reload(tmp_path, "--wait")
    assert wrong.returncode == EXIT_REDIS_REFUSED, wrong.stderr
    assert "Redis refused user 'nobody'" in wrong.stderr

    (tmp_path / "supervisor.toml").write_text(f'redis-url = "{redis_url}"\n')
    (tmp_path / "version").write_text("v3")
    fixed = reload(tmp_path, "--wait")
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert version() == "v3"
    wait_until(lambda: "last reload failed" not in last_status(master), timeout=10,
               what="STATUS= forgets the failure once a reload succeeded")

    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    assert not (tmp_path / "run" / "master.pid.reload").exists()
    gone = reload(tmp_path, "--wait")
    assert gone.returncode == EXIT_NOT_FOUND and "no master runs" in gone.stderr
