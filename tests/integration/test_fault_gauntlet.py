"""One pool through every fault of issue 12 in one go; good jobs keep flowing.

A wrong password at start (the pool refuses to start, exit 8, no restart
loop), then a pool with the right one and a producer enqueueing steadily,
while the test sends it: an entry whose bytes are not UTF-8, a task that
calls sys.exit(), an out-of-memory window, and a Redis restart without
persistence. Checked at the end: every job confirmed after the restart ran
exactly once, so did every job confirmed before it that Redis still had
(the ones it lost with its data are counted apart), the only dead letters
are the two bad ones, and the master never replaced a child.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sample_tasks
from helpers import wait_until
from master_harness import Masters
from redis_server import RedisServer

import supervisor.api.producer as producer_module
from supervisor.broker import keys
from supervisor.errors import EXIT_REDIS_REFUSED, BrokerUnavailable

HERE = Path(__file__).resolve().parent
PASSWORD = "gauntlet-secret"


class Steady(threading.Thread):
    """Enqueues a noted job every 20 ms, retrying each id until it is confirmed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.confirmed: list[tuple[str, float]] = []  # (job id, when confirmed)
        self.stop = threading.Event()

    def run(self) -> None:
        sent = 0
        while not self.stop.is_set():
            job_id = f"steady-{sent:05d}"
            while not self.stop.is_set():
                try:
                    sample_tasks.noted.apply_async(job_id=job_id)
                except BrokerUnavailable:  # down or refusing writes: the same id again
                    time.sleep(0.05)
                    continue
                self.confirmed.append((job_id, time.time()))
                break
            sent += 1
            self.stop.wait(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    # Persistence off: a restart loses the data, as such a deployment would.
    redis_server = RedisServer(tmp_path / "redis", None, "--appendonly", "no",
                               password=PASSWORD)
    redis_server.start()
    yield redis_server
    redis_server.stop()


def noted(notes: Path) -> list[str]:
    return notes.read_text().split() if notes.exists() else []


@pytest.mark.timeout(240)
def test_a_pool_through_every_fault_keeps_good_jobs_flowing(server: RedisServer,
                                                            tmp_path: Path) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    admin = redis.Redis(port=server.port, password=PASSWORD, decode_responses=True)
    notes = tmp_path / "notes.txt"
    env = {"PYTHONPATH": f"{HERE}:{HERE.parent.parent}", "T_NOTES": str(notes)}
    masters = Masters()
    steady = Steady()
    try:
        wrong = masters.run(tmp_path, env, workers=2, tasks="sample_tasks", options=[
            "--redis-url", f"redis://:wrong@127.0.0.1:{server.port}/0", "--node-name", "wrong"])
        assert wrong.wait_exit(30) == EXIT_REDIS_REFUSED, wrong.log()
        assert ":wrong@" not in wrong.log(), "the password is never printed"
        master = masters.run(tmp_path, env, workers=2, tasks="sample_tasks", options=[
            "--redis-url", url, "--node-name", "gauntlet", "--graceful-timeout", "10"])
        master.notify.wait_for("READY=1", timeout=30)
        children = master.child_pids()
        producer_module.configure(redis_url=url)
        steady.start()
        wait_until(lambda: len(noted(notes)) >= 20, timeout=30, what="jobs flow")

        # Bad input: bytes that are not UTF-8, and a task calling sys.exit().
        raw = redis.Redis(port=server.port, password=PASSWORD)
        raw.xadd(keys.stream("default"), {"m": b"\xff\x00 not a job"})
        exiting = sample_tasks.exits.delay(4)
        wait_until(lambda: admin.xlen(keys.dead("default")) == 2, timeout=30,
                   what="the two bad messages dead-lettered")
        letters = [json.loads(f["m"]) for _, f in admin.xrange(keys.dead("default"))]
        assert sorted(letter["reason"] for letter in letters) == ["error", "invalid"]
        assert exiting.id in {letter["id"] for letter in letters}

        # An out-of-memory window while workers are in the middle of jobs: it lasts
        # until a worker has said it keeps its outcomes (its settle was refused).
        slow = [sample_tasks.noted.delay(0.5).id for _ in range(4)]
        wait_until(lambda: set(slow) & set(noted(notes)), timeout=30, what="a slow job runs")
        flowing = len(noted(notes))
        admin.config_set("maxmemory", "1")  # every write refused, whatever is freed
        wait_until(lambda: "outcomes are kept until it takes writes again" in master.log(),
                   timeout=30, what="a worker riding out the refused writes")
        admin.config_set("maxmemory", "0")
        wait_until(lambda: set(slow) <= set(noted(notes)), timeout=30, what="slow jobs ran")
        wait_until(lambda: len(noted(notes)) >= flowing + 20, timeout=30,
                   what="jobs flow again after the OOM window")
        assert admin.xlen(keys.dead("default")) == 2, "no healthy job dead-lettered"

        # Redis restarts without its data.
        restarted_at = time.time()
        server.kill()
        server.start()
        flowing = len(noted(notes))
        wait_until(lambda: len(noted(notes)) >= flowing + 20, timeout=60,
                   what="jobs flow again after the restart")
        steady.stop.set()
        steady.join(10)

        confirmed = steady.confirmed
        after = [job_id for job_id, at in confirmed if at > restarted_at + 0.1]
        wait_until(lambda: set(after) <= set(noted(notes)), timeout=60,
                   what="every job confirmed after the restart ran")
        ran = noted(notes)
        before = [job_id for job_id, at in confirmed if at <= restarted_at]
        lost_with_data = [job_id for job_id in before if job_id not in ran]
        print(f"\ngauntlet: {len(confirmed)} jobs confirmed, {len(after)} after the restart; "
              f"{len(lost_with_data)} lost with Redis's data (no persistence)")
        counts = {job_id: ran.count(job_id) for job_id, _ in confirmed}
        assert all(counts[job_id] == 1 for job_id in after), "a job after the restart " \
            "did not run exactly once"
        assert all(ran.count(job_id) == 1 for job_id in slow), "a slow job ran twice"
        twice = [job_id for job_id, count in counts.items() if count > 1]
        assert twice == [], f"jobs ran twice without a kill: {twice}"
        assert admin.xlen(keys.dead("default")) == 0, "dead letters after the data loss"
        assert master.child_pids() == children, "the master replaced a child"
        log = master.log()
        assert "Traceback" not in log and "died:" not in log, log[-3000:]
    finally:
        steady.stop.set()
        producer_module._overrides.clear()
        producer_module._producer = None
        masters.stop_all()
