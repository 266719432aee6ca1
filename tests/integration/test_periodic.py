"""Periodic jobs against a real Redis: once per tick across nodes, catch-up, HUP, CLI;
and 100,000 delayed jobs due at once.

Time is driven through `Scheduler.tick(now)` where waiting for real minutes
would be needed (catch-up); the several-nodes, HUP and scale tests run real
masters and wait on conditions in Redis.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import periodic_tasks  # noqa: F401 - registers the tasks the schedules name
import psutil
import pytest
import redis
from conftest import worker_env
from helpers import wait_until
from master_harness import MasterProcess, Masters

from supervisor.broker import keys
from supervisor.broker.streams import Broker, EnqueueRequest
from supervisor.config import Config, load_config
from supervisor.core.job import Job, new_job_id
from supervisor.core.record import of_new_job as initial_record
from supervisor.errors import ConfigError
from supervisor.worker.scheduler import make_scheduler

HERE = Path(__file__).resolve().parent
UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC_ZONE).timestamp()


def write_config(path: Path, schedules: str) -> str:
    path.write_text(schedules)
    return str(path)


def stream_ids(client: redis.Redis, queue: str = "default") -> list[str]:
    return [json.loads(fields["m"])["id"] for _, fields in client.xrange(keys.stream(queue))]


def config_for(redis_url: str, config_file: str, node: str = "n1") -> Config:
    return load_config({"redis_url": redis_url, "config_file": config_file, "node_name": node},
                       env={})


# --- catch-up after downtime, on a fake clock -----------------------------------


@pytest.mark.parametrize(("policy", "expected"), [
    ("none", []),
    ("latest", ["13:00"]),
    ("all", ["12:10", "12:20", "12:30", "12:40", "12:50", "13:00"]),
])
def test_downtime_then_restart_follows_catch_up(redis_url: str, client: redis.Redis,
                                                tmp_path: Path, policy: str,
                                                expected: list[str]) -> None:
    path = write_config(tmp_path / "s.toml", f'''
[[schedule]]
name = "ten"
task = "periodic_tasks.record"
cron = "*/10 * * * *"
catch_up = "{policy}"
args = ["x"]
''')
    first = make_scheduler(config_for(redis_url, path), client)
    assert first is not None
    assert first.tick(at("2025-06-01T12:00:03")) == 1
    assert first.tick(at("2025-06-01T12:00:03.5")) == 0  # nothing new due
    assert stream_ids(client) == [f"ten@{int(at('2025-06-01T12:00'))}"]

    # Every node down for an hour; a freshly started worker (no memory) comes back.
    restarted = make_scheduler(config_for(redis_url, path, node="n2"), client)
    assert restarted is not None
    fired = restarted.tick(at("2025-06-01T13:05"))
    ids = stream_ids(client)[1:]
    assert fired == len(expected)
    ticks = [datetime.fromtimestamp(int(job_id.split("@")[1]), UTC_ZONE) for job_id in ids]
    assert [moment.strftime("%H:%M") for moment in ticks] == expected
    # And it goes on from there: the next tick fires on time, once.
    assert restarted.tick(at("2025-06-01T13:10:01")) == 1
    assert restarted.tick(at("2025-06-01T13:10:02")) == 0
    record = json.loads(client.hget(keys.schedules("default"), "ten") or "{}")
    assert (record["tick"], record["node"]) == (int(at("2025-06-01T13:10")), "n2")


def test_many_schedulers_at_one_tick_enqueue_once(redis_url: str, client: redis.Redis,
                                                  tmp_path: Path) -> None:
    path = write_config(tmp_path / "s.toml", '''
[[schedule]]
task = "periodic_tasks.record"
every = 1
args = [1, 2]
''')
    schedulers = [make_scheduler(config_for(redis_url, path, node=f"n{i}"), client)
                  for i in range(5)]
    now = at("2025-06-01T12:00:00.2")
    fired = [scheduler.tick(now + i * 0.01) for i, scheduler in enumerate(schedulers)
             if scheduler is not None]
    assert fired == [1, 0, 0, 0, 0]
    [(_, fields)] = client.xrange(keys.stream("default"))
    job = json.loads(fields["m"])
    assert (job["task"], job["args"], job["id"]) == (
        "periodic_tasks.record", [1, 2], f"periodic_tasks.record@{int(at('2025-06-01T12:00'))}")
    assert json.loads(client.get(keys.job("default", job["id"])) or "{}")["state"] == "queued"


def test_a_fired_tick_runs_the_producer_hooks(redis_url: str, client: redis.Redis,
                                              tmp_path: Path) -> None:
    from supervisor import EnqueueInfo, Middleware, configure

    class Origin(Middleware):
        def before_enqueue(self, job: EnqueueInfo) -> None:
            job.headers["origin"] = f"schedule:{job.task}"

    path = write_config(tmp_path / "s.toml", '''
[[schedule]]
task = "periodic_tasks.record"
every = 1
''')
    configure(middleware=[Origin()])
    try:
        scheduler = make_scheduler(config_for(redis_url, path), client)
        assert scheduler is not None and scheduler.tick(at("2025-06-01T12:00:00.2")) == 1
    finally:
        configure(middleware=[])
    [(_, fields)] = client.xrange(keys.stream("default"))
    job = json.loads(fields["m"])
    assert job["hd"] == {"origin": "schedule:periodic_tasks.record"}
    record = json.loads(client.get(keys.job("default", job["id"])) or "{}")
    assert record["headers"] == job["hd"]


def test_invalid_entries_are_refused_and_unknown_tasks_left_out(
        redis_url: str, client: redis.Redis, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    broken = write_config(tmp_path / "broken.toml", '''
[[schedule]]
task = "periodic_tasks.record"
cron = "every minute"
''')
    with pytest.raises(ConfigError, match="entry 1 .task 'periodic_tasks.record'.: invalid cron"):
        config_for(redis_url, broken)  # at start and on HUP: the master refuses the file
    path = write_config(tmp_path / "s.toml", '''
[[schedule]]
task = "nowhere.to_be_found"
every = 5

[[schedule]]
task = "periodic_tasks.record"
every = 5
''')
    scheduler = make_scheduler(config_for(redis_url, path), client)
    assert scheduler is not None
    assert scheduler.tick(at("2025-06-01T12:00:00.1")) == 1
    # Which tasks exist is known only where the task modules are imported.
    assert "names task 'nowhere.to_be_found', which is not registered" in caplog.text


# --- `supervisor schedules` -------------------------------------------------------


def run_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor", "schedules", *args],
                          cwd=HERE, env=worker_env(redis_url), capture_output=True, text=True,
                          timeout=60)


def test_schedules_command_shows_next_and_last_fire(redis_url: str, client: redis.Redis,
                                                    tmp_path: Path) -> None:
    path = write_config(tmp_path / "s.toml", '''
[[schedule]]
name = "shanghai"
task = "periodic_tasks.record"
cron = "*/5 * * * *"
tz = "Asia/Shanghai"
args = [16, 16]

[[schedule]]
name = "never"
task = "periodic_tasks.record"
cron = "0 0 1 1 *"
''')
    scheduler = make_scheduler(config_for(redis_url, path), client)
    assert scheduler is not None
    fired_at = at("2025-06-01T02:05:01")  # 10:05 in Shanghai
    assert scheduler.tick(fired_at) == 1

    shown = run_cli(redis_url, "--config", path, "--tasks", "periodic_tasks", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {row["name"]: row for row in json.loads(shown.stdout)}
    shanghai = rows["shanghai"]
    assert shanghai["last_job_id"] == f"shanghai@{int(at('2025-06-01T02:05'))}"
    assert (shanghai["last_fire_local"], shanghai["last_fire_utc"]) == (
        "2025-06-01T10:05:00+08:00", "2025-06-01T02:05:00+00:00")
    assert shanghai["last_node"] == "n1" and shanghai["queue"] == "default"
    upcoming = datetime.fromisoformat(shanghai["next_fire_utc"])
    assert upcoming.timestamp() > time.time() and upcoming.minute % 5 == 0
    assert datetime.fromisoformat(shanghai["next_fire_local"]) == upcoming
    assert shanghai["next_fire_local"].endswith("+08:00")
    assert rows["never"]["last_job_id"] is None
    assert rows["never"]["next_fire_utc"].endswith("-01-01T00:00:00+00:00")

    text = run_cli(redis_url, "--config", path, "--tasks", "periodic_tasks")
    assert text.returncode == 0, text.stderr
    assert "shanghai  [cron '*/5 * * * *' Asia/Shanghai, catch_up=latest]" in text.stdout
    assert f"job shanghai@{int(at('2025-06-01T02:05'))}  by n1" in text.stdout
    assert "2025-06-01 10:05:00+08:00  (UTC 2025-06-01 02:05:00+00:00)" in text.stdout
    assert "last   never fired" in text.stdout


def test_schedules_command_names_an_invalid_entry(redis_url: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "s.toml", '[[schedule]]\ntask = "x.y"\nevery = 0\n')
    shown = run_cli(redis_url, "--config", path)
    assert shown.returncode == 2
    assert "[[schedule]] entry 1 (task 'x.y'): every must be a whole number" in shown.stderr


# --- real masters -------------------------------------------------------------------


@pytest.fixture
def start_node(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., MasterProcess]]:
    masters = Masters()

    def start(name: str, tasks: str, *options: str, workers: int = 2) -> MasterProcess:
        cwd = tmp_path / name
        cwd.mkdir()
        return masters.run(cwd, worker_env(redis_url), workers=workers, tasks=tasks,
                           options=["--node-name", name, "--redis-url", redis_url,
                                    "--graceful-timeout", "10", *options])

    yield start
    masters.stop_all()


def test_a_schedule_naming_an_unknown_task_is_refused_where_the_tasks_are_known(
        redis_url: str, tmp_path: Path, start_node: Callable[..., MasterProcess]) -> None:
    path = write_config(tmp_path / "s.toml", '[[schedule]]\ntask = "periodic_tasks.recrod"\n'
                                              'every = 5\n')
    named = "names task 'periodic_tasks.recrod', which the task modules periodic_tasks do not"
    checked = run_cli(redis_url, "--config", path, "--tasks", "periodic_tasks")
    assert checked.returncode == 2 and named in checked.stderr, checked.stderr
    assert run_cli(redis_url, "--config", path).returncode == 0  # no modules: cannot tell
    master = start_node("n-unknown", "periodic_tasks", "--config", path)
    assert master.wait_exit(timeout=30) == 2
    assert named in master.log() and master.log().count("spawned worker") == 2

def test_three_nodes_one_job_per_tick(start_node: Callable[..., MasterProcess],
                                      client: redis.Redis) -> None:
    masters = [start_node(f"node{i}", "periodic_beat") for i in range(3)]
    for master in masters:
        master.notify.wait_for("READY=1")
    wait_until(lambda: client.llen("t:beats") >= 8, timeout=30, what="8 beats ran")
    for master in masters:
        master.send(signal.SIGTERM)
    for master in masters:
        assert master.wait_exit() == 0, master.log()

    ran = client.lrange("t:beats", 0, -1)
    left = stream_ids(client)  # enqueued, not run before the stop
    ticks = [int(job_id.rsplit("@", 1)[1]) for job_id in ran + left]
    assert len(ticks) == len(set(ticks)), f"a tick was enqueued twice: {sorted(ticks)}"
    assert sorted(ticks) == list(range(min(ticks), max(ticks) + 1)), "a tick was skipped"
    # Every worker of every node tried each tick; the record says who won the last.
    record = json.loads(client.hget(keys.schedules("default"), "periodic_beat.beat") or "{}")
    assert record["tick"] == max(ticks) and record["node"] in {"node0", "node1", "node2"}


def test_hup_applies_an_edited_schedule(start_node: Callable[..., MasterProcess],
                                        client: redis.Redis, tmp_path: Path) -> None:
    schedule = '''
[[schedule]]
name = "hup"
task = "periodic_tasks.record"
every = 1
args = ["{version}"]
'''
    path = write_config(tmp_path / "s.toml", schedule.format(version="v1"))
    master = start_node("node", "periodic_tasks", "--config", path)
    master.notify.wait_for("READY=1")

    def versions() -> list[str]:
        return [json.loads(item)[1][0] for item in client.lrange("t:record", 0, -1)]

    wait_until(lambda: "v1" in versions(), timeout=20, what="a v1 run")
    write_config(tmp_path / "s.toml", schedule.format(version="v2"))
    master.send(signal.SIGHUP)
    master.notify.wait_for("READY=1", count=2)
    # The old generation retires; from then on only the edited schedule fires.
    wait_until(lambda: versions()[-3:] == ["v2"] * 3, timeout=30, what="three v2 runs in a row")
    ids = [json.loads(item)[0] for item in client.lrange("t:record", 0, -1)]
    assert len(ids) == len(set(ids)), "a tick ran twice across the reload"
    assert "v1" not in versions()[versions().index("v2"):]
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0, master.log()


# --- delayed jobs at scale ----------------------------------------------------------


def enqueue_delayed(client: redis.Redis, run: str, count: int, due_ms: int) -> None:
    """`count` noop jobs in the delayed set, all due at `due_ms` (pipelined)."""
    broker = Broker(client)
    now_ms = int(time.time() * 1000)
    requests = []
    for _ in range(count):
        job = Job(id=new_job_id(), task="periodic_tasks.noop", queue="default", args=(run,))
        requests.append(EnqueueRequest(queue="default", job_id=job.id, message=job.encode(),
                                       record=initial_record(job, due_ms), due_ms=due_ms,
                                       ttl=3600))
    assert all(broker.enqueue_many(requests, now_ms))


@pytest.mark.slow  # ~1 min: `make test-slow` (CI runs it after `make test`)
def test_100k_delayed_jobs_due_at_once_run_once_in_flat_memory(
        start_node: Callable[..., MasterProcess], client: redis.Redis) -> None:
    master = start_node("node", "periodic_tasks", workers=2)
    master.notify.wait_for("READY=1")
    children = [psutil.Process(pid) for pid in master.wait_children(2)]

    def rss() -> dict[int, int]:
        return {child.pid: child.memory_info().rss for child in children}

    # Warm-up: every code path runs once before the baseline is taken.
    enqueue_delayed(client, "warm", 1000, int(time.time() * 1000) + 300)
    wait_until(lambda: client.scard("t:ran:warm") == 1000, timeout=30, what="warm-up ran")
    baseline = rss()

    total = 100_000
    due_ms = int(time.time() * 1000) + 2000
    enqueue_delayed(client, "big", total, due_ms)
    peak = dict(baseline)

    def done() -> bool:
        for pid, value in rss().items():
            peak[pid] = max(peak[pid], value)
        return client.scard("t:ran:big") == total

    wait_until(done, timeout=120, interval=0.2, what="100,000 delayed jobs ran")
    assert client.get("t:dups") is None, "a job ran twice"
    assert client.zcard(keys.delayed("default")) == 0
    assert client.xlen(keys.stream("default")) == 0
    assert master.child_pids() == {child.pid for child in children}, "a worker was replaced"
    # Holding the jobs in worker memory would cost >= 100,000 * ~300 bytes = 30 MB
    # per worker; promotion in batches keeps each worker within a few MB.
    growth = {pid: (peak[pid] - baseline[pid]) / 2**20 for pid in baseline}
    assert max(growth.values()) < 8, f"worker RSS grew (MiB): {growth}"
    master.send(signal.SIGTERM)
    assert master.wait_exit() == 0, master.log()
