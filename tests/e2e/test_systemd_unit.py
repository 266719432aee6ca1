"""The shipped systemd units: `systemd-analyze verify`, and a real systemd running them.

The real-systemd test runs systemd as PID 1 of a private PID and mount
namespace (DESIGN section 7) that sees only a directory of units made by
the test: the shipped unit, a drop-in pointing it at this checkout, and
stub targets for its default dependencies. It never sees the machine's own
units, so none of the machine's boot services can run. Inside the namespace
/run is a fresh tmpfs and /etc/passwd gains the unit's `supervisor` user,
and /opt and /tmp are fresh tmpfs too (the test's files are bound into
/opt), so nothing on the host changes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from helpers import wait_until

from supervisor.api.producer import Producer
from supervisor.api.result import AsyncResult
from supervisor.config import load_config

ROOT = Path(__file__).resolve().parent.parent.parent
UNITS = ROOT / "systemd"
SYSTEMD = Path("/lib/systemd/systemd")
VENV_BIN = Path(sys.executable).parent
SHIPPED_EXEC = "/opt/supervisor/venv/bin/supervisor"


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize("name", ["supervisor.service", "supervisor@.service"])
def test_unit_has_the_required_settings(name: str) -> None:
    settings = unit_settings(UNITS / name)
    expected = {
        "Type": "notify", "ExecReload": "/bin/kill -HUP $MAINPID", "KillMode": "mixed",
        "Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "PrivateTmp": "yes", "User": "supervisor",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert settings["EnvironmentFile"] and settings["WatchdogSec"]
    # TimeoutStopSec must leave the master its graceful timeout (default 30 s) and more.
    assert int(settings["TimeoutStopSec"][0]) > 30
    assert any("5" in value.split() for value in settings["RestartPreventExitStatus"])


def test_env_example_names_only_real_options() -> None:
    from supervisor.config import ENV_PREFIX, OPTIONS

    names = re.findall(r"^#?(SUPERVISOR_[A-Z_]+)=", (UNITS / "supervisor.env.example").read_text(),
                       re.MULTILINE)
    assert names
    for name in names:
        assert name[len(ENV_PREFIX):].lower() in OPTIONS, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    executable = shutil.which("supervisor", path=str(VENV_BIN))
    assert executable, "the venv's supervisor script"
    for name, as_name in [("supervisor.service", "supervisor.service"),
                          ("supervisor@.service", "supervisor@check.service")]:
        # The shipped ExecStart points at the documented install location; verify
        # checks that it is executable, so point it at this checkout's venv.
        text = (UNITS / name).read_text().replace(SHIPPED_EXEC, executable)
        (tmp_path / name).write_text(text)
        target = tmp_path / as_name
        if as_name != name:
            target.symlink_to(tmp_path / name)
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(target)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        complaints = [line for line in result.stderr.splitlines() if as_name in line
                      or name in line]
        assert complaints == [], complaints


# --- a real systemd -------------------------------------------------------------

def _real_systemd_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (systemd as PID 1 of a private namespace)"
    if not SYSTEMD.exists():
        return f"{SYSTEMD} is absent"
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


TASKS = """
import os, time
from pathlib import Path

import redis

from supervisor import TaskContext, task

# Boot gate: the first generation waits here until the test opens the gate,
# so it can see the unit still 'activating' (no READY=1 yet).
while not Path(os.environ.get("GATE", "/nonexistent-gate")).exists():
    time.sleep(0.05)

_client = None


def r():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)
    return _client


@task(bind=True)
def work(self: TaskContext, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    r().hincrby("t:runs", self.request.id, 1)
    return os.getpid()
"""

DROP_IN = """[Service]
# The base Python may find libpython through a RUNPATH under /root: point it at the bind.
Environment=LD_LIBRARY_PATH=/opt/python/lib
EnvironmentFile=
EnvironmentFile=/opt/supervisor/app/supervisor.env
StandardOutput=append:/opt/supervisor/app/master.log
StandardError=inherit
"""

STUB = "[Unit]\nDescription=stub {name} for the test\nDefaultDependencies=no\n"


class PrivateSystemd:
    """systemd as PID 1 of a private PID + mount namespace, seeing only `unit_dir`."""

    def __init__(self, unit_path: str, target: str, setup: str, log: Path) -> None:
        script = (f"set -e\n{setup}\n"
                  f"exec env container=other SYSTEMD_UNIT_PATH={unit_path} "
                  f"{SYSTEMD} --system --unit={target}\n")
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
             "sh", "-c", script],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.pid = wait_until(self._find_pid1, timeout=20, what="systemd as PID 1")
        wait_until(lambda: self.run("systemctl", "show", "-p", "Version", check=False),
                   timeout=30, interval=0.1, what="systemd answering on its private bus")

    def _find_pid1(self) -> int | None:
        try:
            for child in psutil.Process(self.proc.pid).children():
                if child.exe().endswith("systemd"):
                    return child.pid
        except psutil.Error:
            return None
        return None

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        result = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.run("systemctl", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, "-p", ",".join(props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def children_of(self, pid: str) -> set[int]:
        """Child pids (in the namespace) of `pid`, read through its /proc."""
        out = self.run("sh", "-c", f"cat /proc/{pid}/task/*/children 2>/dev/null || true")
        return {int(value) for value in out.split()}

    def stop(self) -> None:
        """End that systemd (and with it every process of its PID namespace)."""
        if self.proc.poll() is None:
            # --force: Exit() directly; exit.target is not among the test's units.
            self.systemctl("--force", "exit", check=False)
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not psutil.pid_exists(self.pid) or
                           psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE,
                           timeout=20, what="systemd exited")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # PID 1 of the namespace: takes all with it
            self.proc.wait(timeout=30)
        self.log.close()


def make_venv(directory: Path) -> None:
    """A venv laid out as the shipped unit expects (/opt/supervisor/venv/bin/supervisor).

    Inside the namespace its base Python is this interpreter's installation
    (bound at /opt/python: it may live under /root, which the unit's user
    cannot reach and ProtectHome hides), and it runs this checkout (bound at
    /opt/supervisor/src) with the test venv's dependencies (/opt/supervisor/deps).
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = directory / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (directory / "bin").mkdir()
    (directory / "bin" / "python").symlink_to(f"/opt/python/bin/{version}")
    (directory / "pyvenv.cfg").write_text(
        "home = /opt/python/bin\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    (site / "checkout.pth").write_text("/opt/supervisor/src\n/opt/supervisor/deps\n")
    script = directory / "bin" / "supervisor"
    script.write_text("#!/opt/supervisor/venv/bin/python\nimport sys\n"
                      "from supervisor.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)


@pytest.fixture
def private_systemd(tmp_path: Path, redis_url: str) -> Iterator[tuple[PrivateSystemd, Path]]:
    reason = _real_systemd_unavailable()
    if reason:
        pytest.skip(reason)
    units, app, etc, venv = (tmp_path / name for name in ("units", "app", "etc", "venv"))
    for directory in (units, units / "supervisor.service.d", app, etc):
        directory.mkdir()
    make_venv(venv)
    shutil.copy(UNITS / "supervisor.service", units)
    (units / "supervisor.service.d" / "test.conf").write_text(DROP_IN)
    (units / "test.target").write_text(
        "[Unit]\nDescription=the unit under test, alone\nDefaultDependencies=no\n"
        "Wants=supervisor.service\n")
    for stub in ("sysinit.target", "basic.target", "shutdown.target", "network-online.target",
                 "multi-user.target"):
        (units / stub).write_text(STUB.format(name=stub))
    (app / "tasks_under_systemd.py").write_text(TASKS)
    (app / "supervisor.env").write_text(
        f"SUPERVISOR_REDIS_URL={redis_url}\nSUPERVISOR_TASKS=tasks_under_systemd\n"
        "SUPERVISOR_WORKERS=2\nSUPERVISOR_GRACEFUL_TIMEOUT=20\n"
        "GATE=/opt/supervisor/app/gate\n")
    app.chmod(0o777)
    # The unit's dedicated user exists only inside the namespace.
    passwd, group = etc / "passwd", etc / "group"
    passwd.write_text(Path("/etc/passwd").read_text()
                      + "supervisor:x:64999:64999:supervisor:/nonexistent:/usr/sbin/nologin\n")
    group.write_text(Path("/etc/group").read_text() + "supervisor:x:64999:\n")
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    binds = {venv: "supervisor/venv", app: "supervisor/app", ROOT: "supervisor/src",
             site_packages: "supervisor/deps", Path(sys.base_prefix): "python", units: "units"}
    setup = "\n".join([
        "mount -t tmpfs tmpfs /run",
        f"mount --bind {passwd} /etc/passwd",
        f"mount --bind {group} /etc/group",
        "mount -t tmpfs tmpfs /opt",
        *(f"mkdir -p /opt/{name} && mount --bind {source} /opt/{name}"
          for source, name in binds.items()),
        # Last: a private /tmp, so PrivateTmp= directories never land on the host's.
        "mount -t tmpfs tmpfs /tmp",
    ])
    systemd = PrivateSystemd("/opt/units", "test.target", setup, tmp_path / "systemd.log")
    try:
        yield systemd, app
    finally:
        systemd.stop()


@pytest.mark.systemd
def test_shipped_unit_starts_reloads_and_stops_gracefully(
    private_systemd: tuple[PrivateSystemd, Path], redis_url: str,
) -> None:
    systemd, app = private_systemd
    unit = "supervisor.service"
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def state() -> dict[str, str]:
        return systemd.show(unit, "ActiveState", "SubState", "MainPID", "StatusText",
                            "ExecMainStatus", "Result", "NRestarts")

    def log() -> str:
        path = app / "master.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # Start: workers are forked but block in their import: no READY=1, so 'activating'.
    wait_until(lambda: state()["MainPID"] != "0" and len(systemd.children_of(state()["MainPID"]))
               == 2, timeout=30, what=f"master and 2 workers forked\n{log()}")
    assert state()["ActiveState"] == "activating", state()
    (app / "gate").write_text("open")
    wait_until(lambda: state()["ActiveState"] == "active", timeout=30,
               what=f"active after READY=1\n{log()}")
    assert "workers up" in state()["StatusText"]
    main_pid = state()["MainPID"]
    first = systemd.children_of(main_pid)

    # Reload: a new generation replaces every worker; the master stays.
    systemd.systemctl("reload", unit)
    wait_until(lambda: state()["ActiveState"] == "active" and
               len(systemd.children_of(main_pid)) == 2 and
               not systemd.children_of(main_pid) & first,
               timeout=30, what=f"new generation after reload\n{log()}")
    assert state()["MainPID"] == main_pid
    assert "generation 2" in log()

    # Stop under load: running jobs finish, the rest stays queued; none lost, none twice.
    producer = Producer(load_config({"redis_url": redis_url}))
    ids = [producer.submit_named("tasks_under_systemd.work", "default", (0.05,), {}).id
           for _ in range(200)]
    wait_until(lambda: client.hlen("t:runs") >= 10, timeout=30, what="jobs running")
    systemd.systemctl("stop", unit)
    final = state()
    assert final["ActiveState"] == "inactive", final
    assert final["Result"] == "success" and final["ExecMainStatus"] == "0", final
    runs = client.hgetall("t:runs")
    assert set(runs.values()) == {"1"}, "none ran twice"
    for job_id in ids:
        if job_id not in runs:
            assert AsyncResult(job_id, queue="default", client=client).state == "queued"
    assert "SIGTERM: graceful stop" in log()
