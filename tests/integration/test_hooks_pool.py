"""Hooks on a real pool: `supervisor run --middleware ...` with forked children.

The middleware module and the task module are written into tmp_path (the
master's cwd). Synchronisation is on READY datagrams and on what the hooks
and tasks write to Redis; the master's own hook writes a file (it never
talks to Redis).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import wait_until
from master_harness import Masters

from supervisor.api.producer import configure, current_producer
from supervisor.api.result import AsyncResult
from supervisor.core.middleware import EnqueueInfo, Middleware

MIDDLEWARE = '''
import os

import redis

from supervisor import Middleware

# What a user naturally writes wrong: a client connected at import. The master imports
# this module at a reload, before it forks the new generation, which inherits this
# very socket (single_connection_client: one Connection, no pid check of a pool).
conn = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True,
                            single_connection_client=True)
conn.rpush("t:imported", f"{os.getpid()} {conn.client_id()}")
conn.client_setname("opened-at-import")  # its last command, as CLIENT LIST shows it


class Resources(Middleware):
    """Replaces the inherited client after the fork with the child's own, closes it at exit."""

    def after_child_boot(self, worker):
        global conn
        # Not conn.close(): that one may be the parent's; leave it to the parent.
        conn = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"],
                                    decode_responses=True, client_name=f"child-{os.getpid()}")
        conn.rpush("t:opened", f"{os.getpid()} {conn.client_id()} {worker.generation}")

    def before_attempt(self, attempt):
        conn.rpush("t:used", f"{os.getpid()} {conn.client_id()}")

    def before_child_exit(self, worker):
        conn.rpush("t:closed", str(os.getpid()))
        conn.close()

    def on_reload(self, reload):
        with open("reloads.log", "a") as log:
            log.write(f"{os.getpid()} {reload.generation} {reload.previous_generation}\\n")


class Stamp(Middleware):
    """Named with --middleware, so it also runs for jobs the tasks enqueue in the child."""

    def before_enqueue(self, job):
        job.headers["stamped-by"] = str(os.getpid())


class Raising(Middleware):
    def after_child_boot(self, worker):
        raise RuntimeError("boot hook boom")

    def before_attempt(self, attempt):
        raise RuntimeError("before hook boom")

    def after_attempt(self, attempt):
        raise RuntimeError("after hook boom")
'''

TASKS = '''
import json
import os

import redis
from tenacity import wait_fixed

from supervisor import TaskContext, task

_r = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


@task(bind=True, max_retries=3, wait=wait_fixed(0.1))
def flaky(self: TaskContext) -> int:
    _r.rpush("t:headers:" + self.request.id,
             json.dumps([self.request.attempt, self.request.headers]))
    if self.request.attempt < 3:
        raise ConnectionError("not yet")
    return os.getpid()


@task
def spawn() -> list:
    return [follow.delay().id, os.getpid()]


@task
def follow() -> int:
    return os.getpid()
'''


class Tenant(Middleware):
    """A producer hook: every job carries its tenant."""

    def before_enqueue(self, job: EnqueueInfo) -> None:
        job.headers["tenant"] = "acme"


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def producer_with_hook(redis_url: str) -> Iterator[None]:
    configure(redis_url=redis_url, middleware=[Tenant()])
    yield
    configure(middleware=[])


# At --concurrency 4 the attempts run on pool threads, and the hooks with them.
@pytest.mark.parametrize("concurrency", [1, 4])
def test_child_hooks_own_their_resources_and_a_raising_hook_hurts_no_job(
    tmp_path: Path, redis_url: str, client: redis.Redis, producer_with_hook: None,
    concurrency: int,
) -> None:
    (tmp_path / "hooks_mw.py").write_text(MIDDLEWARE)
    (tmp_path / "hooktasks.py").write_text(TASKS)
    masters = Masters()
    try:
        master = masters.run(tmp_path, {"SUPERVISOR_REDIS_URL": redis_url}, workers=2,
                             tasks="hooktasks",
                             options=["--redis-url", redis_url, "--graceful-timeout", "10",
                                      "--concurrency", str(concurrency),
                                      "--middleware",
                                      "hooks_mw:Resources,hooks_mw:Raising,hooks_mw:Stamp"])
        master.notify.wait_for("READY=1")
        children = master.wait_children(2)
        jobs = [current_producer().submit_named("hooktasks.flaky", "default", (), {})
                for _ in range(6)]
        ran_in = {job.get(timeout=30) for job in jobs}  # three attempts each, hooks raising
        assert ran_in <= children

        opened = [line.split() for line in client.lrange("t:opened", 0, -1)]
        assert sorted(int(pid) for pid, _, _ in opened) == sorted(children), \
            "after_child_boot ran once in each child, not in the master"
        own = {pid: conn for pid, conn, _ in opened}
        assert len(set(own.values())) == 2, "each child has a connection of its own"
        used = [line.split() for line in client.lrange("t:used", 0, -1)]
        assert len(used) == 18 and {pid for pid, _ in used} <= set(own)
        if concurrency == 1:
            assert all(own[pid] == conn for pid, conn in used), \
                "every attempt used its own child's connection"
        else:  # threads at once: the child's client opens more from its own pool
            owners: dict[str, set[str]] = {}
            for pid, conn in used:
                owners.setdefault(conn, set()).add(pid)
            assert all(len(pids) == 1 for pids in owners.values()), \
                f"no connection is shared across children: {owners}"

        for job in jobs:  # the producer hook's header, on every attempt
            seen = [json.loads(item) for item in client.lrange(f"t:headers:{job.id}", 0, -1)]
            assert seen == [[1, {"tenant": "acme"}], [2, {"tenant": "acme"}],
                            [3, {"tenant": "acme"}]]

        spawner = current_producer().submit_named("hooktasks.spawn", "default", (), {})
        follow_id, spawned_in = spawner.get(timeout=30)
        follow: AsyncResult[Any] = AsyncResult(follow_id)
        assert follow.get(timeout=30) in children
        assert follow.info()["headers"] == {"stamped-by": str(spawned_in)}, \
            "the child's own producer runs the --middleware hooks (a task's next job)"
        assert spawner.info()["headers"] == {"tenant": "acme"}  # no Stamp in this process

        log = master.log()
        for point in ("after_child_boot", "before_attempt", "after_attempt"):
            assert f"hook hooks_mw.Raising.{point} raised; ignored" in log
        assert "RuntimeError: before hook boom" in log  # with its traceback

        names = {entry["name"] for entry in client.client_list()}
        assert {f"child-{pid}" for pid in children} <= names, "the server sees each child's"

        master.send(signal.SIGHUP)  # the master's hook; the new generation opens its own
        master.notify.wait_for("READY=1", count=2)
        wait_until(lambda: client.llen("t:opened") == 4, timeout=20, what="new generation")
        reloads = (tmp_path / "reloads.log").read_text().split()
        assert reloads == [str(master.pid), "2", "1"], "on_reload ran in the master"
        wait_until(lambda: {int(p) for p in client.lrange("t:closed", 0, -1)} == children,
                   timeout=20, what="the old generation's before_child_exit")
        # Closed on the server's side too, not only in the hook's own record.
        wait_until(lambda: not {f"child-{pid}" for pid in children}
                   & {entry["name"] for entry in client.client_list()},
                   timeout=20, what="the old generation's connections gone from CLIENT LIST")

        # The reload imported the middleware module in the master, which connected at
        # import; the new generation was forked with that socket and replaced it.
        imported = dict(line.split() for line in client.lrange("t:imported", 0, -1))
        parents_id = imported[str(master.pid)]
        second = {pid: conn for pid, conn, generation
                  in (line.split() for line in client.lrange("t:opened", 0, -1))
                  if generation == "2"}
        assert len(second) == 2 and not set(second) & set(imported) - {str(master.pid)}, \
            "the new generation did not import the module itself: it inherited the parent's"
        assert len(set(second.values())) == 2 and parents_id not in second.values()
        used_before = client.llen("t:used")
        later = [current_producer().submit_named("hooktasks.flaky", "default", (), {})
                 for _ in range(4)]
        assert {job.get(timeout=30) for job in later} <= {int(pid) for pid in second}
        used = [line.split() for line in client.lrange("t:used", used_before, -1)]
        assert len(used) == 12 and parents_id not in {conn for _, conn in used}, \
            "no attempt of the new generation used the connection opened in the master"
        if concurrency == 1:
            assert all(second[pid] == conn for pid, conn in used)
        [parents] = [entry for entry in client.client_list() if entry["id"] == parents_id]
        assert parents["name"] == "opened-at-import"
        assert parents["cmd"] == "client|setname", "its last command is still the import's"

        master.send(signal.SIGTERM)
        assert master.wait_exit() == 0
        closed = [int(pid) for pid in client.lrange("t:closed", 0, -1)]
        opened_pids = [int(line.split()[0]) for line in client.lrange("t:opened", 0, -1)]
        assert sorted(closed) == sorted(opened_pids), "every child closed what it opened"
        assert not {f"child-{pid}" for pid in opened_pids} & {
            entry["name"] for entry in client.client_list()}, "none left open on the server"
    finally:
        masters.stop_all()


def test_a_middleware_that_does_not_load_stops_the_pool_with_its_name(
    tmp_path: Path, redis_url: str,
) -> None:
    (tmp_path / "hooktasks.py").write_text(TASKS)
    masters = Masters()
    try:
        master = masters.run(tmp_path, {"SUPERVISOR_REDIS_URL": redis_url}, workers=2,
                             tasks="hooktasks",
                             options=["--redis-url", redis_url, "--middleware", "nowhere:Thing"])
        code = master.wait_exit()
        assert code != 0
        assert "middleware nowhere:Thing: cannot import nowhere" in master.log()
    finally:
        masters.stop_all()
