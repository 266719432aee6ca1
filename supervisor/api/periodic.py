"""`@periodic`: schedules declared in code, merged with the config file's `[[schedule]]`.

The schedule model and its fire times are core/schedule.py's (pure); the
config file is read by config.py. Here: the registry of code schedules, the
merge (a file entry replaces a code schedule of the same name), and
resolving a schedule against the task registry (its queue and record TTL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from supervisor.api.registry import DEFAULT_QUEUE, Task, lookup
from supervisor.config import Config, read_schedule_file
from supervisor.core.schedule import DEFAULT_CATCH_UP, Schedule, make_schedule
from supervisor.errors import UnknownTask

_SCHEDULES: dict[str, Schedule] = {}
TaskT = TypeVar("TaskT", bound=Task[Any, Any])


def _register(schedule: Schedule) -> None:
    known = _SCHEDULES.get(schedule.name)
    if known is not None and not known.same_definition(schedule):
        raise ValueError(f"a schedule named {schedule.name!r} already exists "
                         f"({known.describe()}); give this one its own name=")
    _SCHEDULES[schedule.name] = schedule


def periodic(
    *,
    cron: str | None = None,
    every: timedelta | float | int | None = None,
    tz: str | None = None,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    name: str | None = None,
    catch_up: str = DEFAULT_CATCH_UP,
) -> Callable[[TaskT], TaskT]:
    """Run a task on a schedule; stack it over `@task`.

        @periodic(cron="*/5 * * * *", tz="Asia/Shanghai", args=(16, 16))
        @task
        def add(x, y): ...

    Every worker of every node runs the schedule; each tick is enqueued once.
    `name` (default: the task's name) identifies the schedule across nodes;
    give one when a task has several schedules.
    """

    def register(target: TaskT) -> TaskT:
        if not isinstance(target, Task):
            raise TypeError("@periodic goes above @task: it schedules a registered task "
                            f"(got {target!r})")
        schedule = make_schedule(name=name or target.name, task=target.name, cron=cron,
                                 every=every, tz=tz, args=args, kwargs=kwargs, queue=queue,
                                 catch_up=catch_up, source=f"code ({target.fn.__module__})")
        _register(schedule)
        return target

    return register


def code_schedules() -> list[Schedule]:
    """Schedules declared with @periodic in the modules imported so far."""
    return list(_SCHEDULES.values())


def forget_schedule(name: str) -> None:
    """Drop a code schedule (for tests)."""
    _SCHEDULES.pop(name, None)


def all_schedules(config_file: str | None) -> tuple[list[Schedule], list[str]]:
    """Code schedules, then the config file's; a file entry replaces a code schedule
    of the same name (so operators can retune a schedule without a deploy)."""
    merged = {schedule.name: schedule for schedule in code_schedules()}
    problems: list[str] = []
    if config_file:
        from_file, problems = read_schedule_file(config_file)
        for schedule in from_file:
            merged[schedule.name] = schedule
    return list(merged.values()), problems


@dataclass(frozen=True, slots=True)
class Entry:
    """A schedule resolved against the task registry: its queue and record TTL."""

    schedule: Schedule
    queue: str
    ttl: int
    priority: int = 0  # the task's: its ticks' jobs run at that level


def resolve(schedule: Schedule, config: Config, *, strict: bool = True) -> Entry:
    """Queue and TTL of a schedule's task; UnknownTask if the task is not registered
    here (unless strict is False: then the default queue and TTL are assumed)."""
    try:
        task = lookup(schedule.task)
    except UnknownTask:
        if strict:
            raise
        return Entry(schedule, schedule.queue or DEFAULT_QUEUE, config.result_ttl)
    return Entry(schedule, schedule.queue or task.queue, task.result_ttl or config.result_ttl,
                 task.priority)
