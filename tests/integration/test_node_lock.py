"""Two masters on one host with one node name and one Redis: the second is refused, naming
the first; other node names, other Redis servers, or a dead first master are fine."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until
from master_harness import MasterProcess
from redis_server import free_port

from supervisor.errors import EXIT_USAGE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    started: list[MasterProcess] = []

    def run(url: str, *options: str) -> MasterProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
        master = MasterProcess([sys.executable, "-m", "supervisor", "run", "--workers", "1",
                                "--tasks", "sample_tasks", "--redis-url", url, *options],
                               tmp_path, env)
        started.append(master)
        return master

    yield run
    for master in started:
        master.stop()


def test_a_second_master_with_a_taken_node_name_is_refused(start: object,
                                                           redis_url: str) -> None:
    run = start  # type: ignore[assignment]
    first = run(redis_url)  # no --node-name: the host name, as a user would
    first.notify.wait_for("READY=1", timeout=30)
    second = run(redis_url)
    assert second.wait_exit(timeout=30) == EXIT_USAGE
    host = socket.gethostname()
    assert f"node name {host!r} is taken on this host by another master using the same " \
           f"Redis (pid {first.pid}); give each pool its own --node-name" in second.log()
    assert "spawned worker" not in second.log()

    other_name = run(redis_url, "--node-name", f"{host}-2")
    other_redis = run(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens: it waits
    other_name.notify.wait_for("READY=1", timeout=30)
    wait_until(lambda: "workers wait for Redis" in other_redis.log(), timeout=30,
               what=f"the master of another Redis started\n{other_redis.log()}")
    assert first.proc.poll() is None

    os.killpg(first.pid, signal.SIGKILL)
    first.wait_exit(timeout=10)
    again = run(redis_url)  # the kernel freed the name with the dead master
    again.notify.wait_for("READY=1", timeout=30)
    for master in (again, other_name, other_redis):  # a graceful stop reaps its workers
        master.send(signal.SIGTERM)
    assert [master.wait_exit(timeout=30) for master in (again, other_name)] == [0, 0]
    other_redis.wait_exit(timeout=30)
