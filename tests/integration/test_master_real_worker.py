"""`supervisor run` as a subprocess with the real worker loop on the private Redis.

Task modules are written per test into tmp_path (the master's cwd), so a
reload's fresh import sees edited code. Synchronisation is on the READY
datagram of a test NOTIFY_SOCKET, psutil's view of the children and the
records the tasks write to Redis.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from helpers import wait_until
from master_harness import MasterProcess, Masters
from redis_server import RedisServer

from supervisor.api.producer import current_producer
from supervisor.api.result import AsyncResult
from supervisor.errors import EXIT_TASK_IMPORT, TaskFailed

pytestmark = pytest.mark.usefixtures("producer")

TASKS = '''
import ctypes, os, signal, time

import redis
from tenacity import stop_after_attempt, wait_fixed

from supervisor import TaskContext, task

VERSION = "{version}"
MB = 1024 * 1024
_client = None
_hoard = []


def r():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)
    return _client


def started(ctx):
    r().rpush("t:starts:" + ctx.request.id, os.getpid())


def stuck_in_c(block):
    signal.pthread_sigmask(signal.SIG_BLOCK, block)
    ctypes.CDLL(None).sleep(3600)


@task(bind=True)
def work(self: TaskContext, seconds: float = 0.0) -> str:
    started(self)
    time.sleep(seconds)
    r().hincrby("t:runs", self.request.id, 1)
    return VERSION


@task(bind=True)
def hang_once(self: TaskContext) -> str:
    """Hangs in C with every signal blocked, the first time only."""
    started(self)
    if r().set("t:hung", os.getpid(), nx=True):
        stuck_in_c(signal.valid_signals())
    return "survived"


@task(bind=True)
def hang_in_c(self: TaskContext) -> str:
    """Hangs in C with SIGALRM blocked (its heartbeat stops), the first time only."""
    started(self)
    if r().set("t:hung-in-c", os.getpid(), nx=True):
        stuck_in_c({{signal.SIGALRM}})
    return "survived"


@task(bind=True, timeout=1, max_retries=0)
def stuck(self: TaskContext) -> None:
    """Stuck in C past its timeout: the soft timeout cannot fire (SIGALRM blocked)."""
    started(self)
    stuck_in_c({{signal.SIGALRM}})


@task(bind=True, timeout=1, stop=stop_after_attempt(2), wait=wait_fixed(0.1))
def stuck_once(self: TaskContext) -> str:
    started(self)
    if self.request.attempt == 1:
        stuck_in_c({{signal.SIGALRM}})
    return "attempt %d" % self.request.attempt


@task
def grow(mb: int) -> int:
    _hoard.append(b"\\x01" * (mb * MB))
    return os.getpid()


@task
def pid(seconds: float = 0.0) -> int:
    time.sleep(seconds)
    return os.getpid()
'''

Start = Callable[..., MasterProcess]


def write_tasks(directory: Path, version: str = "v1", module: str = "mtasks") -> None:
    (directory / f"{module}.py").write_text(TASKS.format(version=version))


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def start(tmp_path: Path, redis_url: str) -> Iterator[Start]:
    masters = Masters()

    def _start(*options: str, workers: int = 2, tasks: str = "mtasks",
               url: str | None = None) -> MasterProcess:
        if not (tmp_path / f"{tasks}.py").exists():
            write_tasks(tmp_path, module=tasks)
        return masters.run(tmp_path, {"SUPERVISOR_REDIS_URL": url or redis_url},
                           workers=workers, tasks=tasks,
                           options=["--redis-url", url or redis_url, "--graceful-timeout", "10",
                                    *options])

    yield _start
    masters.stop_all()

def enqueue(task: str, *args: Any) -> AsyncResult[Any]:
    return current_producer().submit_named(f"mtasks.{task}", "default", args, {})


def starts(client: redis.Redis, job: AsyncResult[Any]) -> list[int]:
    return [int(pid) for pid in client.lrange(f"t:starts:{job.id}", 0, -1)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Stream:
    """Enqueues `work` jobs steadily from a thread until stopped."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.ids: list[str] = []
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ids.append(enqueue("work", self.seconds).id)
            time.sleep(0.005)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=10)
        return list(self.ids)


def test_sigkill_child_mid_job_is_replaced_and_the_job_runs_again(
    start: Start, client: redis.Redis,
) -> None:
    master = start(workers=2)
    master.notify.wait_for("READY=1")
    before = master.wait_children(2)
    job = enqueue("work", 1.5)
    (holder,) = wait_until(lambda: starts(client, job), what="job started")
    psutil.Process(holder).kill()
    assert job.get(timeout=30) == "v1"
    assert len(starts(client, job)) == 2, "ran again after the kill (at-least-once)"
    assert client.hget("t:runs", job.id) == "1"
    wait_until(lambda: len(master.child_pids()) == 2 and holder not in master.child_pids(),
               what="replacement")
    assert len(master.child_pids() - before) == 1


def test_sigkill_of_the_master_takes_real_workers_with_it(start: Start) -> None:
    master = start(workers=2)
    master.notify.wait_for("READY=1")
    pids = master.wait_children(2)
    master.send(signal.SIGKILL)
    master.wait_exit()
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=5, what="no orphan")


def test_term_under_a_stream_of_jobs_loses_none_and_runs_none_twice(
    start: Start, client: redis.Redis,
) -> None:
    master = start(workers=2)
    master.notify.wait_for("READY=1")
    stream = Stream()
    wait_until(lambda: client.hlen("t:runs") >= 20, timeout=30, what="jobs flowing")
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0
    ids = stream.stop()
    assert master.notify.count("STOPPING=1") == 1
    runs = client.hgetall("t:runs")
    assert set(runs.values()) == {"1"}, "none ran twice"
    unfinished = [job_id for job_id in ids if job_id not in runs]
    states = {AsyncResult(job_id, queue="default", client=client).state for job_id in unfinished}
    assert states <= {"queued"}, f"unfinished jobs are still waiting in Redis: {states}"

    second = start(workers=2)  # and a new master drains them, each exactly once
    second.notify.wait_for("READY=1")
    wait_until(lambda: client.hlen("t:runs") == len(ids), timeout=60, what="all jobs ran")
    assert set(client.hgetall("t:runs").values()) == {"1"}
    second.send(signal.SIGTERM)
    assert second.wait_exit() == 0


def test_hup_under_load_new_code_new_pids_nothing_lost(
    start: Start, client: redis.Redis, tmp_path: Path,
) -> None:
    master = start(workers=2)
    master.notify.wait_for("READY=1")
    old = master.wait_children(2)
    stream = Stream()
    wait_until(lambda: client.hlen("t:runs") >= 10, timeout=30, what="jobs flowing")
    write_tasks(tmp_path, version="v2")
    master.send(signal.SIGHUP)
    counts: list[int] = []

    def reloaded() -> bool:
        pids = master.child_pids()
        counts.append(len(pids))
        return master.notify.count("READY=1") == 2 and len(pids) == 2 and not pids & old

    wait_until(reloaded, timeout=30, what="new generation serving alone")
    assert min(counts) >= 1, "never zero workers"
    states = master.notify.states()
    assert states[:3] == ["READY=1", "RELOADING=1", "READY=1"]
    assert enqueue("work").get(timeout=20) == "v2", "changed task code took effect"
    ids = stream.stop()
    wait_until(lambda: all(client.hexists("t:runs", job_id) for job_id in ids), timeout=60,
               what="every job of the stream ran")
    assert set(client.hgetall("t:runs").values()) == {"1"}, "none ran twice"


def test_ttin_ttou_with_real_workers(start: Start) -> None:
    master = start(workers=1)
    master.notify.wait_for("READY=1")
    master.wait_children(1)
    master.send(signal.SIGTTIN)
    master.wait_children(2)
    master.send(signal.SIGTTOU)
    master.wait_children(1)
    assert enqueue("pid").get(timeout=20) in master.child_pids()


def hang_a_child(start: Start, client: redis.Redis, task: str) -> tuple[MasterProcess, int]:
    """Run `task` (it hangs its first worker) until the master killed that worker and
    the job ran again on a live one; (the master, the pid of the hung child)."""
    master = start("--heartbeat-timeout", "2", workers=2)
    master.notify.wait_for("READY=1")
    job = enqueue(task)
    (hung,) = wait_until(lambda: starts(client, job), what="job started")
    wait_until(lambda: gone(hung), timeout=30, what="hung child killed")
    master.wait_children(2)
    assert job.get(timeout=30) == "survived", "the job ran again on a live worker"
    return master, hung


def test_hung_child_is_killed_after_the_heartbeat_timeout(
    start: Start, client: redis.Redis,
) -> None:
    master, hung = hang_a_child(start, client, "hang_once")
    log = master.log()
    assert f"(pid {hung}) is hung" in log
    # SIGABRT reaches a thread of the child that does not block it (faulthandler
    # then dumps every thread, the stuck one included, and aborts); else SIGKILL.
    assert re.search(rf"\(pid {hung}\) died: killed by SIG(ABRT|KILL) \(hung\)", log), log
    # Every signal is blocked in the stuck thread, but not in the child's
    # node-chores thread: the dump comes from there and shows every thread.
    assert "in stuck_in_c" in log, log


def test_a_hung_child_dumps_every_threads_traceback_before_it_dies(
    start: Start, client: redis.Redis,
) -> None:
    """The README's promise: SIGABRT makes a hung child's faulthandler log each thread."""
    master, hung = hang_a_child(start, client, "hang_in_c")
    log = master.log()
    assert f"(pid {hung}) died: killed by SIGABRT (hung)" in log, log
    dump = log[log.index(f"(pid {hung}) is hung"):]
    assert "Fatal Python error: Aborted" in dump, dump
    assert "in stuck_in_c" in dump and "in hang_in_c" in dump, "the task's own frames"
    assert "in _run" in dump, "the other threads too (node chores)"


def test_the_master_never_talks_to_redis_nor_imports_task_code(
    start: Start, tmp_path: Path, redis_url: str,
) -> None:
    """What the import contracts say statically, seen on a running master."""
    write_tasks(tmp_path)
    (tmp_path / "spy.py").write_text(
        "import os\n"
        "with open('imported-by.log', 'a') as log:\n"
        "    log.write(f'{os.getpid()}\\n')\n"
        "from mtasks import *  # noqa: F403 - the tasks, registered\n")
    master = start(workers=2, tasks="spy")
    master.notify.wait_for("READY=1")
    children = master.wait_children(2)
    assert enqueue("pid").get(timeout=20) in children
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])

    def to_redis(pid: int) -> list[Any]:
        return [c for c in psutil.Process(pid).net_connections(kind="inet")
                if c.raddr and c.raddr.port == port]

    assert all(to_redis(pid) for pid in children), "children hold their connections"
    assert to_redis(master.pid) == [], "the master holds none"
    importers = {int(line) for line in (tmp_path / "imported-by.log").read_text().split()}
    assert importers == children, "each child imported the task code; the master did not"


def test_children_idle_longer_than_the_heartbeat_timeout_are_not_taken_for_hung(
    start: Start,
) -> None:
    """Idle children beat from SIGALRM only; nothing else may overwrite those beats."""
    master = start("--heartbeat-timeout", "1", workers=2)
    master.notify.wait_for("READY=1")
    master.wait_children(2)
    children = set(master.child_pids())
    assert enqueue("pid").get(timeout=20) in children  # a batch ran and its end was written
    # An observation window, not a synchronisation: four heartbeat timeouts of
    # idling (empty fetches every 250 ms) must not look like a hang.
    window = time.monotonic() + 4.0
    while time.monotonic() < window:
        assert set(master.child_pids()) == children, master.log()
        time.sleep(0.2)
    assert "is hung" not in master.log()


def test_job_over_its_timeout_is_killed_and_fails_with_reason_timeout(
    start: Start, client: redis.Redis,
) -> None:
    master = start(workers=2)
    master.notify.wait_for("READY=1")
    job = enqueue("stuck")
    retried = enqueue("stuck_once")
    with pytest.raises(TaskFailed) as failure:
        job.get(timeout=30)
    assert failure.value.reason == "timeout"
    assert retried.get(timeout=30) == "attempt 2", "the retry policy applied"
    assert "ran past its timeout: SIGKILL" in master.log()
    master.wait_children(2)


def test_child_over_the_memory_limit_is_recycled_after_its_job(start: Start) -> None:
    master = start("--max-memory-per-child", "150", workers=1)
    master.notify.wait_for("READY=1")
    grown = enqueue("grow", 200).get(timeout=30)
    wait_until(lambda: gone(grown), timeout=30, what="recycled")
    master.wait_children(1)
    assert "recycled: over memory" in master.log()
    assert enqueue("pid").get(timeout=30) != grown


def test_max_jobs_per_child_recycles(start: Start) -> None:
    master = start("--max-jobs-per-child", "5", workers=1)
    master.notify.wait_for("READY=1")
    # The child counts its own jobs, so even fast jobs never overshoot.
    jobs = [enqueue("pid", 0.0) for _ in range(20)]
    pids = [job.get(timeout=30) for job in jobs]
    assert max(Counter(pids).values()) <= 5  # jitter: 0..10 % of 5, i.e. none
    assert len(set(pids)) >= 4
    assert "recycled: ran its --max-jobs-per-child share" in master.log()


def test_task_module_raising_on_import_stops_the_master(start: Start, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken deploy')\n")
    master = start(workers=3, tasks="broken")
    assert master.wait_exit(timeout=30) == EXIT_TASK_IMPORT
    log = master.log()
    assert "could not import the task modules broken" in log
    assert "broken deploy" in log
    assert log.count("spawned worker") <= 3, "no restart storm"
    assert master.notify.count("READY=1") == 0


@pytest.mark.slow
def test_redis_down_for_20s_master_still_answers_signals(
    start: Start, tmp_path: Path,
) -> None:
    import supervisor.api.producer as producer_module

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        producer_module.configure(redis_url=server.url)
        local = redis.Redis.from_url(server.url, decode_responses=True)
        master = start(workers=2, url=server.url)
        master.notify.wait_for("READY=1")
        old = master.wait_children(2)
        before = [enqueue("work").id for _ in range(20)]
        wait_until(lambda: local.hlen("t:runs") == 20, timeout=30, what="warm-up jobs ran")
        in_flight = [enqueue("work", 0.2).id for _ in range(10)]
        server.kill()
        outage_ends = time.monotonic() + 20
        master.send(signal.SIGTTIN)
        master.wait_children(3, timeout=5)
        # A reload restores the configured count (2) and its workers boot without Redis.
        master.send(signal.SIGHUP)
        wait_until(lambda: master.notify.count("READY=1") == 2, timeout=15,
                   what="reload done during the outage")
        master.send(signal.SIGTTOU)
        wait_until(lambda: "SIGTTOU: workers 2 -> 1" in master.log(), timeout=5)
        # The old generation cannot settle its jobs without Redis: it has the
        # graceful timeout (10 s here), then it is killed; its jobs are recovered.
        master.wait_children(1, timeout=20)
        assert not master.child_pids() & old
        wait_until(lambda: time.monotonic() >= outage_ends, timeout=25, interval=0.2,
                   what="the 20 s outage")
        server.start()
        after = [enqueue("work").id for _ in range(20)]
        every = set(before) | set(in_flight) | set(after)
        wait_until(lambda: set(local.hgetall("t:runs")) == every, timeout=60,
                   what="workers resumed and every job ran")
        master.send(signal.SIGTERM)
        assert master.wait_exit() == 0
    finally:
        server.stop()
