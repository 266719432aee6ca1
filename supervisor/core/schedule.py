"""Periodic jobs: the schedule model, `[[schedule]]` entries, fire times (pure).

Nothing here speaks Redis (that is worker/scheduler.py) or reads files (the
config file is config.py's; `@periodic` is api/periodic.py): this module
says *which* tick instants are due, as pure functions of (schedule, last
fired tick, now), so tests drive them with any clock they like.

Tick instants are whole epoch seconds, computed the same way on every node:

- `every=N` seconds: the multiples of N since the Unix epoch (UTC), so an
  `every=timedelta(hours=1)` schedule fires on the hour, whatever the time
  each node started.
- `cron=`: the instants matching the expression in the schedule's zone, as
  computed by cronsim, which follows Debian (Vixie) cron around DST changes:
  an expression with a fixed minute and hour ("30 2 * * *") is matched on the
  local wall clock; a local time that does not exist (spring forward) fires
  at the first minute that exists after it (02:30 -> 03:00), and a local time
  that happens twice (fall back) fires once, at its first occurrence. An
  expression with a wildcard minute or hour ("0 * * * *", "*/15 * * * *")
  follows real time: it fires every real hour / quarter, so the repeated
  hour in autumn fires twice and the skipped hour in spring not at all.

Catch-up after downtime (`catch_up=`): "latest" (default) fires the most
recent missed tick once and skips older ones; "none" skips every tick more
than LATE_GRACE seconds late; "all" fires each missed tick, oldest first, at
most MAX_CATCH_UP of them (the most recent ones).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from supervisor.errors import ConfigError

CATCH_UP_POLICIES = ("none", "latest", "all")
DEFAULT_CATCH_UP = "latest"
# A tick this many seconds late still counts as on time (a busy or restarting
# worker); older ones are "missed" and follow the catch-up policy.
LATE_GRACE = 60.0
# "all" never fires more than this many missed ticks of one schedule.
MAX_CATCH_UP = 100
# Windows (seconds back from now) tried in turn when looking for the most
# recent cron ticks, so a schedule last fired long ago costs few iterations.
_SPANS = (120.0, 3600.0, 2 * 86400.0, 40 * 86400.0, 400 * 86400.0)

# Job ids are "<name>@<tick>", and job ids are at most 200 characters.
MAX_NAME_LENGTH = 180
MARKER_TTL_MIN = 60  # seconds a tick marker lives at least ...
MARKER_TTL_MAX = 7 * 86400  # ... and at most (the last-fire record guards beyond it)

ENTRY_KEYS = frozenset({"task", "name", "cron", "every", "tz", "args", "kwargs", "queue",
                        "catch_up"})


@dataclass(frozen=True, slots=True)
class Schedule:
    """One periodic job: which task, with what arguments, at which instants.

    `queue` None means the task's own queue (resolved where the task is known).
    """

    name: str
    task: str
    cron: str | None = None
    every: int | None = None  # whole seconds
    tz: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    catch_up: str = DEFAULT_CATCH_UP
    source: str = "code"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' {self.tz}"
        return f"every {self.every}s"

    def same_definition(self, other: Schedule) -> bool:
        mine = (self.task, self.cron, self.every, self.tz, self.args, self.kwargs, self.queue,
                self.catch_up)
        return mine == (other.task, other.cron, other.every, other.tz, other.args,
                        other.kwargs, other.queue, other.catch_up)


def _seconds(every: timedelta | float | int) -> int:
    if isinstance(every, bool):
        raise ValueError("every must be a timedelta or a number of seconds")
    seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
    if not math.isfinite(seconds) or seconds < 1 or seconds != int(seconds):
        raise ValueError(f"every must be a whole number of seconds, at least 1; got {every!r}")
    return int(seconds)


def make_schedule(
    *,
    name: str,
    task: str,
    cron: str | None = None,
    every: timedelta | float | int | None = None,
    tz: str | None = None,
    args: Any = (),
    kwargs: Any = None,
    queue: str | None = None,
    catch_up: str = DEFAULT_CATCH_UP,
    source: str = "code",
) -> Schedule:
    """A validated Schedule; raises ValueError saying what is wrong."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH \
            or not name.isprintable() or any(char.isspace() for char in name):
        raise ValueError(f"schedule name {name!r} must be 1-{MAX_NAME_LENGTH} printable "
                         "characters without whitespace (it is part of job ids and key names)")
    if (cron is None) == (every is None):
        raise ValueError("give exactly one of cron= or every=")
    seconds = None
    if every is not None:
        seconds = _seconds(every)
        if tz is not None:
            raise ValueError("tz applies to cron schedules only (every= counts real seconds)")
    zone_name = tz or "UTC"
    if not isinstance(zone_name, str):
        raise ValueError(f"tz must be a zone name like 'Europe/Berlin', got {tz!r}")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone_name!r} (use an IANA name such as "
                         "'Europe/Berlin' or 'UTC')") from None
    if cron is not None:
        if not isinstance(cron, str):
            raise ValueError(f"cron must be a string like '*/5 * * * *', got {cron!r}")
        try:
            CronSim(cron, datetime.now(zone))
        except CronSimError as exc:
            raise ValueError(f"invalid cron expression {cron!r}: {exc}") from None
    if catch_up not in CATCH_UP_POLICIES:
        raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP_POLICIES)}; "
                         f"got {catch_up!r}")
    if not isinstance(args, list | tuple):
        raise ValueError(f"args must be a list, got {args!r}")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"kwargs must be a table / dict, got {kwargs!r}")
    try:
        json.dumps([list(args), dict(kwargs)], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"args and kwargs must be JSON data: {exc}") from None
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ValueError(f"queue must be a non-empty string, got {queue!r}")
    return Schedule(name=name, task=task, cron=cron, every=seconds, tz=zone_name,
                    args=tuple(args), kwargs=dict(kwargs), queue=queue, catch_up=catch_up,
                    source=source)


# --- fire times: pure functions of (schedule, last fired, now) ---------------


def _cron_iter(schedule: Schedule, after: float) -> Iterator[int]:
    """Cron instants strictly after `after`, in order."""
    assert schedule.cron is not None
    start = datetime.fromtimestamp(after, schedule.zone)
    for moment in CronSim(schedule.cron, start):
        tick = int(moment.timestamp())
        # Starting inside a repeated local hour, cronsim may answer the
        # first occurrence of a wall time that is already past: skip it.
        if tick > after:
            yield tick


def next_fire(schedule: Schedule, after: float) -> int | None:
    """The first tick instant strictly after `after` (None: the cron never matches again)."""
    if schedule.every is not None:
        return (math.floor(after / schedule.every) + 1) * schedule.every
    try:
        return next(_cron_iter(schedule, after))
    except StopIteration:
        return None


def ticks_between(schedule: Schedule, start: float, end: float, limit: int) -> list[int]:
    """Tick instants t with start < t <= end: the most recent `limit` of them, in order."""
    if end <= start or limit <= 0:
        return []
    if schedule.every is not None:
        period = schedule.every
        first = math.floor(start / period) + 1
        last = math.floor(end / period)
        first = max(first, last - limit + 1)
        return [k * period for k in range(first, last + 1)]
    for span in (*_SPANS, None):
        begin = start if span is None or end - span <= start else end - span
        found: deque[int] = deque(maxlen=limit)
        for tick in _cron_iter(schedule, begin):
            if tick > end:
                break
            found.append(tick)
        if len(found) >= limit or begin == start:
            return list(found)
    return []  # pragma: no cover - the last span always starts at `start`


@dataclass(frozen=True, slots=True)
class Plan:
    """What to fire now: `fire` in order; `skipped` missed ticks left out (at least)."""

    fire: tuple[int, ...]
    skipped_from: int | None = None  # first missed tick not fired, if any


def plan(schedule: Schedule, last_tick: int | None, now: float) -> Plan:
    """The ticks to fire at `now`, given the last tick fired (by any node).

    Never fired before (a new schedule, or its record was lost): only a tick
    at most LATE_GRACE seconds old fires; nothing is "missed" yet.
    """
    if last_tick is None:
        return Plan(tuple(ticks_between(schedule, now - LATE_GRACE, now, 1)))
    if schedule.catch_up == "all":
        chosen = ticks_between(schedule, last_tick, now, MAX_CATCH_UP)
    elif schedule.catch_up == "latest":
        chosen = ticks_between(schedule, last_tick, now, 1)
    else:
        chosen = ticks_between(schedule, max(last_tick, now - LATE_GRACE), now, 1)
    first_missed = next_fire(schedule, last_tick)
    skipped = None
    if first_missed is not None and first_missed <= now and (
            not chosen or first_missed < chosen[0]):
        skipped = first_missed
    return Plan(tuple(chosen), skipped)


# --- a fired tick ------------------------------------------------------------


def job_id_for(schedule: Schedule, tick: int) -> str:
    """The id of the job a tick produces: readable and the same on every node."""
    return f"{schedule.name}@{tick}"


def marker_ttl(schedule: Schedule, tick: int) -> int:
    """Seconds the marker of a fired tick lives: two periods, within the bounds."""
    following = next_fire(schedule, tick)
    period = (following - tick) if following is not None else MARKER_TTL_MAX
    return int(min(MARKER_TTL_MAX, max(MARKER_TTL_MIN, 2 * period)))


def last_fire(tick: int, job_id: str, now: float, node: str) -> str:
    """The last-fire record of a schedule (JSON), as the schedules hash keeps it."""
    return json.dumps({"tick": tick, "job_id": job_id, "fired_at": round(now, 6),
                       "node": node}, separators=(",", ":"))


def parse_last(raw: str | None) -> dict[str, Any] | None:
    """The last-fire record of a schedule (None if never fired or unreadable)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tick"), int | float):
        return None
    return data


# --- schedules from the config file ([[schedule]] tables) -------------------


def _entry_label(path: str, index: int, entry: Any) -> str:
    task = entry.get("task") if isinstance(entry, dict) else None
    named = f" (task {task!r})" if isinstance(task, str) else ""
    return f"config file {path}: [[schedule]] entry {index}{named}"


def schedule_from_entry(entry: Any, index: int, path: str) -> Schedule:
    """One `[[schedule]]` table as a Schedule; ConfigError naming the entry if invalid."""
    label = _entry_label(path, index, entry)
    if not isinstance(entry, dict):
        raise ConfigError(f"{label}: expected a table ([[schedule]]), got {entry!r}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{label}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(ENTRY_KEYS))})")
    task = entry.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigError(f"{label}: 'task' is required: the registered task name, "
                          "e.g. task = \"tasks.examples.add\"")
    every = entry.get("every")
    if every is not None and not isinstance(every, int | float):
        raise ConfigError(f"{label}: 'every' is a number of seconds, got {every!r}")
    try:
        return make_schedule(
            name=entry.get("name", task), task=task, cron=entry.get("cron"), every=every,
            tz=entry.get("tz"), args=entry.get("args", []), kwargs=entry.get("kwargs"),
            queue=entry.get("queue"), catch_up=entry.get("catch_up", DEFAULT_CATCH_UP),
            source=f"config file {path}",
        )
    except ValueError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def schedules_from_file(data: Mapping[str, Any], path: str) -> tuple[list[Schedule], list[str]]:
    """The `[[schedule]]` entries of a parsed TOML config file: (valid schedules, problems).

    Each invalid entry gives one problem line naming it; the others still count.
    """
    entries = data.get("schedule", [])
    if not isinstance(entries, list):
        return [], [f"config file {path}: 'schedule' must be an array of tables: "
                    "write [[schedule]] (two brackets)"]
    schedules: list[Schedule] = []
    problems: list[str] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        try:
            schedule = schedule_from_entry(entry, index, path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if schedule.name in names:
            problems.append(f"{_entry_label(path, index, entry)}: the schedule name "
                            f"{schedule.name!r} is already used by entry {names[schedule.name]}; "
                            "give each a distinct name = \"...\"")
            continue
        names[schedule.name] = index
        schedules.append(schedule)
    return schedules, problems


def local_and_utc(tick: float, tz: str) -> tuple[str, str]:
    """ISO strings of an instant in the schedule's zone and in UTC."""
    moment = datetime.fromtimestamp(tick, UTC)
    return moment.astimezone(ZoneInfo(tz)).isoformat(), moment.isoformat()
