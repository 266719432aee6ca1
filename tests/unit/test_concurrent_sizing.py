"""How much a many-slot worker takes: its free slots plus a buffer of ~HOLD_TARGET of
waiting work, none while durations are unknown or for slow jobs (fakes, no threads)."""

from __future__ import annotations

from worker_fakes import Draw, FakeBroker, FakeChores, FakeClock

from supervisor.config import Config
from supervisor.worker.concurrent import ConcurrentWorker, make_worker
from supervisor.worker.loop import Worker


def worker(concurrency: int = 16, **options: object) -> ConcurrentWorker:
    config = Config(queues=("default",), node_name="unit", concurrency=concurrency,
                    **options)  # type: ignore[arg-type]
    built = make_worker(config, broker=FakeBroker(), clock=FakeClock(), chores=FakeChores(),
                        rng=Draw())  # type: ignore[arg-type]
    assert isinstance(built, ConcurrentWorker)
    return built


def test_concurrency_1_is_the_one_at_a_time_worker() -> None:
    config = Config(queues=("default",), node_name="unit")
    assert type(make_worker(config, broker=FakeBroker(), clock=FakeClock(),  # type: ignore[arg-type]
                            chores=FakeChores())) is Worker


def test_no_buffer_while_durations_are_unknown_or_jobs_are_slow() -> None:
    w = worker()
    assert w.buffer() == 0 and w.room() == 16  # unknown: the slots only
    w.sizer.average = 0.5
    assert w.buffer() == 0


def test_fast_jobs_get_a_buffer_of_at_most_k() -> None:
    w = worker()
    w.sizer.average = 0.01  # 10 ms jobs: 16 more wait 10 ms each at most
    assert w.buffer() == 16 and w.room() == 32
    w.sizer.average = 0.05
    assert w.buffer() == 16
    w.sizer.average = 0.08  # 16 * 0.1 / 0.08 = 20 in all: 4 beyond the slots
    assert w.buffer() == 4


def test_a_child_takes_no_more_than_its_share_before_recycling() -> None:
    w = worker(max_jobs_per_child=10)
    w.job_limit = 10
    w.sizer.average = 0.01
    assert w.room() == 10
    w.jobs_done = 7
    assert w.room() == 3


def test_concurrency_comes_from_flag_env_or_file_and_is_checked(
        tmp_path: object, monkeypatch: object) -> None:
    import pytest

    from supervisor.config import load_config
    from supervisor.errors import ConfigError

    path = tmp_path / "c.toml"  # type: ignore[operator]
    path.write_text("concurrency = 16\n")
    assert load_config({"config_file": str(path)}).concurrency == 16
    monkeypatch.setenv("SUPERVISOR_CONCURRENCY", "8")  # type: ignore[attr-defined]
    assert load_config({}).concurrency == 8
    assert load_config({"concurrency": 4}).concurrency == 4  # the flag wins
    with pytest.raises(ConfigError, match="--concurrency"):
        load_config({"concurrency": 0})
    assert Config().concurrency == 1  # one job at a time unless asked
