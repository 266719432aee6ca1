"""Reaching Redis: credentials, permissions, and trouble at start. Real servers, real masters.

- What a restart cannot fix ends the pool with EXIT_REDIS_REFUSED and one line
  naming user, server and database; an unreachable server is waited for,
  visibly, and the pool is not `ready` meanwhile.
- A password need not travel in the URL (--redis-password-file,
  SUPERVISOR_REDIS_PASSWORD, the config file, configure()), and an ambiguous
  one in a URL is refused without being echoed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import wait_until
from master_harness import MasterProcess
from redis_server import RedisServer, free_port

from supervisor.errors import EXIT_OK, EXIT_REDIS_REFUSED, EXIT_REDIS_UNAVAILABLE, EXIT_USAGE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "Zx9-never-printed"
ODD_SECRET = "s3@c/r%e?t#"  # every character a URL would misread


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update({"SUPERVISOR_REDIS_URL": url, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])})
    return env


def side_by_side(*runs: tuple[list[str], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run `supervisor ARGS` with each environment, all at once; the results in order."""
    started = [(args, subprocess.Popen([sys.executable, "-m", "supervisor", *args], cwd=HERE,
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)) for args, env in runs]
    done = []
    for args, process in started:
        out, err = process.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


def cli(args: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return side_by_side((args, {**env_for(url), **env}))[0]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private server with two users: `app` (everything on sv:*) and `reader` (read only)."""
    server = RedisServer(tmp_path_factory.mktemp("secured"))
    server.start()
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", f">{SECRET}", "~sv:*", "+@all")
    admin.execute_command("ACL", "SETUSER", "reader", "on", f">{SECRET}", "~sv:*", "+@read",
                          "+@connection")
    admin.execute_command("ACL", "SETUSER", "odd", "on", f">{ODD_SECRET}", "~*", "+@all")
    yield server
    server.stop()


@pytest.fixture
def masters(tmp_path: Path) -> Iterator[list[MasterProcess]]:
    started: list[MasterProcess] = []
    yield started
    for master in started:
        master.stop()


def run_master(started: list[MasterProcess], cwd: Path, url: str, *extra: str) -> MasterProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    master = MasterProcess([sys.executable, "-m", "supervisor", "run", "--workers", "2",
                            "--tasks", "sample_tasks", "--redis-url", url, *extra],
                           cwd, env=env_for(url))
    started.append(master)
    return master


def statuses(master: MasterProcess) -> list[str]:
    return [line[len("STATUS="):] for message in master.notify.poll() for line in message
            if line.startswith("STATUS=")]


def test_what_a_restart_cannot_fix_ends_the_pool_at_start(
    secured: RedisServer, masters: list[MasterProcess], tmp_path: Path,
) -> None:
    where = f"127.0.0.1:{secured.port}"
    cases = {
        "wrong password": (f"redis://app:not-{SECRET}@{where}/0",
                           f"Redis refused user 'app' at {where}, database 0"),
        "no permission": (f"redis://reader:{SECRET}@{where}/0",
                          f"Redis refused a command to user 'reader' at {where}, database 0"),
        "no such database": (f"redis://app:{SECRET}@{where}/99",
                             f"Redis at {where} has no database 99"),
    }
    running = {name: run_master(masters, tmp_path / name.replace(" ", "-"), url,
                                "--node-name", name.replace(" ", "-"))
               for name, (url, _) in cases.items()}
    for name, master in running.items():
        assert master.wait_exit(timeout=30) == EXIT_REDIS_REFUSED, (name, master.log())
        log = master.log()
        reason = cases[name][1]
        assert reason in log, (name, log)
        assert f"Stopping with exit code {EXIT_REDIS_REFUSED}" in log, log
        assert log.count(reason) == 1, log  # said once, by the master
        assert SECRET not in log and "Traceback" not in log, log
        # No restart storm: the two workers of the first start, nothing more.
        assert log.count("spawned worker") == 2, log
        assert master.notify.count("READY=1") == 0


def test_foreground_worker_and_commands_say_the_same_and_exit_8(secured: RedisServer) -> None:
    url = f"redis://app:not-{SECRET}@127.0.0.1:{secured.port}/0"
    commands = (["worker", "--tasks", "sample_tasks"], ["queues"], ["status"])
    for args, done in zip(commands, side_by_side(*((args, env_for(url)) for args in commands)),
                          strict=True):
        assert done.returncode == EXIT_REDIS_REFUSED, (args, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: Redis refused user 'app' at "
                                                         f"127.0.0.1:{secured.port}"), errors
        assert SECRET not in done.stderr + done.stdout


def test_an_unreachable_redis_is_waited_for_and_shown_not_ready(
    masters: list[MasterProcess], tmp_path: Path,
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    master = run_master(masters, tmp_path, url)
    wanted = f"waiting for Redis: cannot reach Redis at {url}"
    wait_until(lambda: any(text.startswith(wanted) for text in statuses(master)), timeout=20,
               what=f"STATUS= says it waits for Redis\n{master.log()}")
    assert master.notify.count("READY=1") == 0
    assert "ready:" not in master.log()
    assert master.log().count("workers wait for Redis") == 1, master.log()
    assert "Traceback" not in master.log()

    server = RedisServer(tmp_path / "late-redis", port)
    server.start()
    try:
        master.notify.wait_for("READY=1", timeout=20)
        assert "Redis answers again" in master.log()
        assert "waiting for Redis" not in statuses(master)[-1]
        master.send(signal.SIGTERM)
        assert master.wait_exit(timeout=30) == EXIT_OK  # it served
    finally:
        server.stop()


def test_a_pool_that_never_reached_redis_does_not_exit_0(
    masters: list[MasterProcess], tmp_path: Path,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    master = run_master(masters, tmp_path, url)
    wait_until(lambda: "workers wait for Redis" in master.log(), timeout=20,
               what=f"the master saw its workers wait\n{master.log()}")
    master.send(signal.SIGINT)  # Ctrl-C
    assert master.wait_exit(timeout=30) == EXIT_REDIS_UNAVAILABLE
    assert "Redis never answered" in master.log()


# --- the password apart from the URL ---------------------------------------------


def test_a_password_kept_out_of_the_url_reaches_every_command(
    secured: RedisServer, masters: list[MasterProcess], tmp_path: Path,
) -> None:
    import supervisor.api.producer as producer_module

    url = f"redis://odd@127.0.0.1:{secured.port}/0"  # the user in the URL, the password apart
    password = tmp_path / "redis-password"
    password.write_text(ODD_SECRET + "\n")
    toml = tmp_path / "supervisor.toml"
    toml.write_text(f'redis-password-file = "{password}"\n')
    master = run_master(masters, tmp_path / "run", url, "--redis-password-file", str(password))
    master.notify.wait_for("READY=1", timeout=30)

    by_option = cli(["enqueue", "sample_tasks.echo", "1", "2", "--wait", "15",
                     "--redis-password-file", str(password)], url)
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout == "[1, 2]\n"
    for done in side_by_side(
            (["queues", "--json"], {**env_for(url), "SUPERVISOR_REDIS_PASSWORD": ODD_SECRET}),
            (["status", "--json"], {**env_for(url),
                                    "SUPERVISOR_REDIS_PASSWORD_FILE": str(password)}),
            (["dead", "list"], {**env_for(url), "SUPERVISOR_CONFIG": str(toml)})):
        assert done.returncode == 0, done.stderr
        assert ODD_SECRET not in done.stdout + done.stderr

    producer_module._overrides.clear()
    try:
        producer_module.configure(redis_url=url, redis_password=ODD_SECRET)
        from sample_tasks import echo

        assert echo.delay(3, 4).get(timeout=15) == [3, 4]
    finally:
        producer_module._overrides.clear()
        producer_module._producer = None

    worker = subprocess.Popen([sys.executable, "-m", "supervisor", "worker", "--tasks",
                               "sample_tasks", "--queues", "other"], cwd=HERE,
                              env={**env_for(url), "SUPERVISOR_REDIS_PASSWORD": ODD_SECRET},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = cli(["enqueue", "sample_tasks.echo", "5", "--queue", "other", "--wait", "15"],
                  url, SUPERVISOR_REDIS_PASSWORD=ODD_SECRET)
        assert job.stdout == "[5, null]\n", job.stderr
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    master.send(signal.SIGTERM)
    assert master.wait_exit(timeout=30) == EXIT_OK
    assert ODD_SECRET not in master.log() + output


def test_an_ambiguous_password_in_the_url_is_refused_everywhere(tmp_path: Path) -> None:
    url = f"redis://app:{ODD_SECRET}@127.0.0.1:6379/0"  # nothing is contacted
    toml = tmp_path / "supervisor.toml"
    toml.write_text(f'redis-url = "{url}"\n')
    from_file = {k: v for k, v in env_for(url).items() if k != "SUPERVISOR_REDIS_URL"}
    runs = side_by_side((["run", "--tasks", "sample_tasks", "--redis-url", url], env_for(url)),
                        (["worker", "--tasks", "sample_tasks"], env_for(url)),
                        (["enqueue", "sample_tasks.echo", "1"], env_for(url)),
                        (["status"], env_for(url)),
                        (["queues"], {**from_file, "SUPERVISOR_CONFIG": str(toml)}))
    for done in runs:
        assert done.returncode == EXIT_USAGE, (done.args, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "percent-encode" in lines[0] and "%40" in lines[0], lines
        assert "Traceback" not in done.stderr
        for fragment in ("s3@", "c/r", "r%e", "e?t"):
            assert fragment not in done.stderr + done.stdout


# --- the least ACL, as the README documents it ------------------------------------------


def documented_rule(role: str) -> list[str]:
    """The ACL rule under `<!-- acl:ROLE -->` in the README, after the user and password."""
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- acl:{role} -->", 1)[1].split("```", 2)[1]
    words = block.split()
    assert words[:2] == ["ACL", "SETUSER"] and words[3:5] == ["on", ">PASSWORD"], words
    return words[5:]


def acl_user(server: RedisServer, name: str, rule: list[str]) -> str:
    """A user with exactly `rule`; its URL names database 1 (SELECT is part of the rule)."""
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{SECRET}", *rule)
    return f"redis://{name}:{SECRET}@127.0.0.1:{server.port}/1"


def test_a_pool_and_a_producer_work_under_exactly_the_documented_acl(
    secured: RedisServer, masters: list[MasterProcess], tmp_path: Path,
) -> None:
    import acl_tasks

    import supervisor.api.producer as producer_module
    from supervisor import chord, enqueue_many
    from tasks import examples

    url = acl_user(secured, "least", documented_rule("worker"))
    viewer = acl_user(secured, "viewer", documented_rule("viewer"))
    toml = tmp_path / "supervisor.toml"
    toml.write_text('[[schedule]]\nname = "acl-tick"\ntask = "tasks.examples.add"\nevery = 1\n'
                    'args = [20, 22]\n')
    master = run_master(masters, tmp_path / "pool", url, "--tasks", "tasks.examples,acl_tasks",
                        "--queues", "default,reports", "--config", str(toml),
                        "--heartbeat-timeout", "2")
    master.notify.wait_for("READY=1", timeout=30)
    producer_module._overrides.clear()
    try:
        producer_module.configure(redis_url=url)
        assert examples.add.delay(1, 2).get(timeout=20) == 3
        assert examples.flaky.delay(3).get(timeout=30) == 3  # retried through the delayed set
        later = examples.add.apply_async((2, 3), countdown=0.5)
        # Workflows and flow control run scripts that read the server's clock (TIME).
        summed = chord([examples.add.s(i, i) for i in range(5)], examples.process_data.s())
        assert summed.delay().get(timeout=30) == {"count": 5, "total": 20}
        limited = [acl_tasks.paced.delay(i) for i in range(20)] + [
            acl_tasks.capped.delay(i) for i in range(5)] + [acl_tasks.once.delay(7)]
        assert [job.get(timeout=30) for job in limited] == [*range(20), *range(5), 7]
        batch = enqueue_many(examples.add.s(i, i) for i in range(50))
        rejected = examples.build_report.delay("")  # a dead letter on the reports queue
        slow = examples.slow.delay(2.0)
        wait_until(lambda: any(child.name().endswith("busy tasks.examples.slow")
                               for child in master.children()), timeout=20,
                   what="a worker runs the slow job")
        victim = next(child for child in master.children()
                      if child.name().endswith("busy tasks.examples.slow"))
        victim.kill()  # its job is recovered by the other worker (XCLAIM, consumer removal)
        assert slow.get(timeout=40) == 2.0
        assert later.get(timeout=20) == 5 and [r.get(timeout=20) for r in batch][-1] == 98
        with pytest.raises(Exception, match="a report needs a day"):
            rejected.get(timeout=20)
        wait_until(lambda: '"acl-tick@' in cli(["schedules", "--json", "--config", str(toml)],
                                                viewer).stdout,
                   timeout=20, what="the schedule fired (its last job shown)")
    finally:
        producer_module._overrides.clear()
        producer_module._producer = None
    views = (["status", "--json"], ["queues"], ["dead", "list"], ["job", slow.id],
             ["result", later.id], ["dead", "show", rejected.id])
    for args, done in zip(views, side_by_side(*((args, env_for(viewer)) for args in views)),
                          strict=True):
        assert done.returncode == 0, (args, done.stderr)
    requeued = cli(["dead", "requeue", rejected.id], url)
    assert requeued.returncode == 0, requeued.stderr
    master.send(signal.SIGTERM)
    assert master.wait_exit(timeout=30) == EXIT_OK
    log = master.log()
    assert "no permissions" not in log and "NOPERM" not in log and "Traceback" not in log, log
