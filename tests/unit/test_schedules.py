"""Schedules, fire times across DST, catch-up plans, `[[schedule]]` entries: pure, fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from supervisor import task
from supervisor.api import periodic as schedules_module
from supervisor.api.periodic import all_schedules, periodic
from supervisor.config import read_schedule_file
from supervisor.core.schedule import (
    LATE_GRACE,
    MAX_CATCH_UP,
    Schedule,
    make_schedule,
    next_fire,
    plan,
    ticks_between,
)
from supervisor.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN, fold: int = 0) -> int:
    """Epoch seconds of a local wall time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).timestamp())


def local(tick: int, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(tick, zone).isoformat()


def fires(schedule: Schedule, start: str, end: str) -> list[str]:
    return [local(t) for t in ticks_between(schedule, at(start), at(end), 1000)]


def cron(expr: str, tz: str = "Europe/Berlin", catch_up: str = "latest") -> Schedule:
    return make_schedule(name="s", task="t.x", cron=expr, tz=tz, catch_up=catch_up)


def every(seconds: int, catch_up: str = "latest") -> Schedule:
    return make_schedule(name="s", task="t.x", every=timedelta(seconds=seconds),
                         catch_up=catch_up)


# --- fire times ---------------------------------------------------------------


def test_every_ticks_are_multiples_of_the_period_since_the_epoch() -> None:
    schedule = every(30)
    assert ticks_between(schedule, 1_000_000_005, 1_000_000_100, 10) == [
        1_000_000_020, 1_000_000_050, 1_000_000_080]
    assert next_fire(schedule, 1_000_000_020) == 1_000_000_050  # strictly after
    assert ticks_between(schedule, 0, 1_000_000_100, 2) == [1_000_000_050, 1_000_000_080]


def test_cron_in_a_zone_fires_at_local_wall_time() -> None:
    schedule = cron("*/5 * * * *", tz="Asia/Shanghai")
    start = datetime(2025, 6, 1, 9, 58, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    tick = next_fire(schedule, start)
    assert tick is not None
    assert datetime.fromtimestamp(tick, ZoneInfo("Asia/Shanghai")).isoformat() == \
        "2025-06-01T10:00:00+08:00"


def test_fixed_time_cron_across_spring_forward_fires_once_at_the_first_real_minute() -> None:
    # 2025-03-30 02:00 CET -> 03:00 CEST: 02:30 does not exist that day.
    assert fires(cron("30 2 * * *"), "2025-03-29T00:00", "2025-04-01T00:00") == [
        "2025-03-29T02:30:00+01:00",
        "2025-03-30T03:00:00+02:00",  # the non-existent 02:30 runs at 03:00 (Debian cron)
        "2025-03-31T02:30:00+02:00",
    ]


def test_fixed_time_cron_across_fall_back_fires_once_at_the_first_occurrence() -> None:
    # 2025-10-26 03:00 CEST -> 02:00 CET: 02:30 happens twice that day.
    assert fires(cron("30 2 * * *"), "2025-10-25T00:00", "2025-10-28T00:00") == [
        "2025-10-25T02:30:00+02:00",
        "2025-10-26T02:30:00+02:00",  # once, at the first (summer time) 02:30
        "2025-10-27T02:30:00+01:00",
    ]


def test_fixed_time_cron_starting_inside_the_repeated_hour_does_not_fire_again() -> None:
    schedule = cron("45 2 * * *")
    second_0230 = at("2025-10-26T02:30", fold=1)  # CET, after 02:45 CEST already passed
    assert local(next_fire(schedule, second_0230) or 0) == "2025-10-27T02:45:00+01:00"


def test_hourly_cron_follows_real_time_across_dst() -> None:
    spring = fires(cron("0 * * * *"), "2025-03-30T00:30", "2025-03-30T04:30")
    assert spring == ["2025-03-30T01:00:00+01:00", "2025-03-30T03:00:00+02:00",
                      "2025-03-30T04:00:00+02:00"]  # 02:00 local never exists
    autumn = fires(cron("0 * * * *"), "2025-10-26T00:30", "2025-10-26T03:30")
    assert autumn == ["2025-10-26T01:00:00+02:00", "2025-10-26T02:00:00+02:00",
                      "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"]
    ticks = ticks_between(cron("0 * * * *"), at("2025-10-26T00:30"), at("2025-10-26T03:30"), 9)
    assert [b - a for a, b in zip(ticks, ticks[1:], strict=False)] == [3600, 3600, 3600]


def test_cron_with_a_seconds_field() -> None:
    schedule = cron("*/20 * * * * *", tz="UTC")
    assert ticks_between(schedule, 1_700_000_000, 1_700_000_060, 10) == [
        1_700_000_020, 1_700_000_040, 1_700_000_060]


# --- catch-up plans -----------------------------------------------------------


def test_never_fired_fires_only_a_tick_that_is_on_time() -> None:
    now = at("2025-06-01T12:00:00.400")
    assert plan(every(1), None, now).fire == (at("2025-06-01T12:00:00"),)
    # A daily schedule deployed at noon does not fire this morning's tick.
    assert plan(cron("0 3 * * *"), None, now).fire == ()
    assert plan(cron("0 12 * * *"), None, now + LATE_GRACE - 1).fire == (
        at("2025-06-01T12:00"),)


@pytest.mark.parametrize(("policy", "expected"), [
    ("none", []),
    ("latest", ["13:00"]),
    ("all", ["12:10", "12:20", "12:30", "12:40", "12:50", "13:00"]),
])
def test_downtime_of_several_ticks_follows_the_catch_up_policy(
        policy: str, expected: list[str]) -> None:
    schedule = cron("*/10 * * * *", catch_up=policy)
    last = at("2025-06-01T12:00")
    now = at("2025-06-01T13:05")  # down for an hour; the 13:00 tick is 5 minutes late
    result = plan(schedule, last, now)
    assert [local(t)[11:16] for t in result.fire] == expected
    assert result.skipped_from == (at("2025-06-01T12:10") if policy != "all" else None)


def test_none_still_fires_a_tick_that_is_only_a_little_late() -> None:
    schedule = cron("0 * * * *", catch_up="none")
    now = at("2025-06-01T12:00:20")
    assert plan(schedule, at("2025-06-01T11:00"), now).fire == (at("2025-06-01T12:00"),)


def test_all_is_bounded() -> None:
    schedule = every(1, catch_up="all")
    result = plan(schedule, 1_000_000_000, 1_000_100_000)
    assert len(result.fire) == MAX_CATCH_UP
    assert result.fire[-1] == 1_000_100_000
    assert result.skipped_from == 1_000_000_001


def test_latest_after_a_long_downtime_is_the_most_recent_tick() -> None:
    schedule = cron("*/5 * * * * *", tz="UTC")  # every 5 s, last fired a year ago
    now = 1_700_000_003
    assert plan(schedule, now - 365 * 86400, now).fire == (1_700_000_000,)


def test_nothing_fires_twice_or_behind_the_last_fire() -> None:
    schedule = every(1, catch_up="all")
    assert plan(schedule, 1_000_000_010, 1_000_000_010.9).fire == ()
    # Another node with a faster clock already fired a later tick.
    assert plan(schedule, 1_000_000_012, 1_000_000_010.5).fire == ()


# --- validation ---------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({}, "exactly one of cron= or every="),
    ({"cron": "* * * * *", "every": 5}, "exactly one of cron= or every="),
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "* * *"}, "invalid cron expression"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"every": 0.5}, "whole number of seconds"),
    ({"every": timedelta(0)}, "whole number of seconds"),
    ({"every": 10, "tz": "UTC"}, "tz applies to cron schedules only"),
    ({"every": 10, "catch_up": "some"}, "catch_up must be one of none, latest, all"),
    ({"every": 10, "args": "x"}, "args must be a list"),
    ({"every": 10, "args": (object(),)}, "JSON"),
    ({"every": 10, "name": "two words"}, "without whitespace"),
    ({"every": 10, "name": "x" * 181}, "1-180 printable characters"),
])
def test_invalid_schedules_are_refused_with_the_reason(options: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_schedule(**{"name": "s", "task": "t.x", **options})  # type: ignore[arg-type]


@pytest.fixture
def clean_schedules() -> Iterator[None]:
    before = dict(schedules_module._SCHEDULES)
    yield
    schedules_module._SCHEDULES.clear()
    schedules_module._SCHEDULES.update(before)


@pytest.mark.usefixtures("clean_schedules")
def test_decorator_registers_a_schedule_for_the_task() -> None:
    @periodic(cron="*/5 * * * *", tz="Asia/Shanghai", args=(16, 16))
    @task(name="unit.periodic.add")
    def add(x: int, y: int) -> int:
        return x + y

    assert add(1, 2) == 3  # still the task
    [schedule] = [s for s in schedules_module.code_schedules() if s.task == "unit.periodic.add"]
    assert (schedule.name, schedule.cron, schedule.tz, schedule.args) == (
        "unit.periodic.add", "*/5 * * * *", "Asia/Shanghai", (16, 16))

    with pytest.raises(ValueError, match="give this one its own name="):
        periodic(every=timedelta(seconds=30))(add)
    periodic(every=timedelta(seconds=30), name="add-often")(add)  # a second, named schedule
    with pytest.raises(TypeError, match="@periodic goes above @task"):
        periodic(every=5)(lambda: None)  # type: ignore[type-var]


# --- [[schedule]] in the config file -----------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return str(path)


def test_config_file_schedules(tmp_path: Path) -> None:
    path = write(tmp_path, """
workers = 2

[[schedule]]
task = "tasks.examples.add"
cron = "* * * * *"
args = [16, 16]

[[schedule]]
name = "report-often"
task = "tasks.examples.build_report"
every = 30
kwargs = { day = "today" }
queue = "reports"
catch_up = "all"
""")
    schedules, problems = read_schedule_file(path)
    assert problems == []
    first, second = schedules
    assert (first.name, first.cron, first.args, first.catch_up) == (
        "tasks.examples.add", "* * * * *", (16, 16), "latest")
    assert (second.name, second.every, second.kwargs, second.queue, second.catch_up) == (
        "report-often", 30, {"day": "today"}, "reports", "all")
    assert second.source == f"config file {path}"


def test_invalid_config_entries_are_named_and_the_others_kept(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[schedule]]
task = "tasks.examples.add"
crn = "* * * * *"

[[schedule]]
cron = "* * * * *"

[[schedule]]
task = "tasks.examples.slow"
cron = "99 * * * *"

[[schedule]]
task = "tasks.examples.flaky"
every = "30s"

[[schedule]]
task = "tasks.examples.add"
every = 10

[[schedule]]
task = "tasks.examples.add"
every = 20
""")
    schedules, problems = read_schedule_file(path)
    assert [s.every for s in schedules] == [10]
    assert len(problems) == 5
    assert problems[0].startswith(f"config file {path}: [[schedule]] entry 1 "
                                  "(task 'tasks.examples.add'): unknown key 'crn'")
    assert "entry 2: 'task' is required" in problems[1]
    assert "entry 3 (task 'tasks.examples.slow'): invalid cron expression '99 * * * *'" \
        in problems[2]
    assert "entry 4 (task 'tasks.examples.flaky'): 'every' is a number of seconds" in problems[3]
    assert "entry 6" in problems[4] and "already used by entry 5" in problems[4]


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_schedule_file(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_schedule_file(write(tmp_path, "[[schedule]\n"))
    _, problems = read_schedule_file(write(tmp_path, "[schedule]\ntask = 'x'\n"))
    assert "write [[schedule]] (two brackets)" in problems[0]


@pytest.mark.usefixtures("clean_schedules")
def test_a_config_entry_replaces_the_code_schedule_of_the_same_name(tmp_path: Path) -> None:
    @periodic(every=60)
    @task(name="unit.periodic.tuned")
    def tuned() -> None: ...

    path = write(tmp_path, '[[schedule]]\ntask = "unit.periodic.tuned"\nevery = 5\n')
    schedules, problems = all_schedules(path)
    [chosen] = [s for s in schedules if s.name == "unit.periodic.tuned"]
    assert (chosen.every, chosen.source, problems) == (5, f"config file {path}", [])
