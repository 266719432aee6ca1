"""Periodic schedules as rows: definition, next fire, last fire and the job it produced.

Shared by `supervisor schedules` and the dashboard. The schedules are those
known here (code and config file) and those the cluster's workers publish
(broker/schedules.py), so any host lists what the cluster runs.
"""

from __future__ import annotations

from typing import Any

from supervisor.api.periodic import resolve
from supervisor.broker.schedules import last_fires, read_definitions
from supervisor.config import Config
from supervisor.core.schedule import (
    Schedule,
    local_and_utc,
    make_schedule,
    next_fire,
    parse_last,
)


def schedule_rows(config: Config, client: Any, schedules: list[Schedule],
                  now: float) -> list[dict[str, Any]]:
    """One row per schedule: definition, next fire (local and UTC), last fire and its job."""
    entries = [resolve(schedule, config, strict=False) for schedule in schedules]
    fires = last_fires(client, [(entry.queue, entry.schedule.name) for entry in entries])
    rows: list[dict[str, Any]] = []
    for entry, raw in zip(entries, fires, strict=True):
        schedule = entry.schedule
        last = parse_last(raw)
        upcoming = next_fire(schedule, now)
        row: dict[str, Any] = {
            "name": schedule.name, "task": schedule.task, "queue": entry.queue,
            "cron": schedule.cron, "every": schedule.every, "tz": schedule.tz,
            "args": list(schedule.args), "kwargs": schedule.kwargs,
            "catch_up": schedule.catch_up, "source": schedule.source,
            "next_fire_local": None, "next_fire_utc": None,
            "last_fire_local": None, "last_fire_utc": None, "last_job_id": None,
            "last_fired_at": None, "last_node": None,
        }
        if upcoming is not None:
            row["next_fire_local"], row["next_fire_utc"] = local_and_utc(upcoming, schedule.tz)
        if last is not None:
            row["last_fire_local"], row["last_fire_utc"] = local_and_utc(last["tick"],
                                                                        schedule.tz)
            row["last_job_id"] = last.get("job_id")
            row["last_fired_at"] = last.get("fired_at")
            row["last_node"] = last.get("node")
        rows.append(row)
    return rows


def published_schedules(client: Any, known: list[Schedule], now: float) -> list[Schedule]:
    """The schedules the cluster's workers published (broker/schedules.py) that are not
    among `known` (those read here from --tasks and --config take precedence)."""
    names = {schedule.name for schedule in known}
    found: list[Schedule] = []
    for fields in read_definitions(client, now):
        if fields["name"] in names:
            continue
        try:
            found.append(make_schedule(
                name=fields["name"], task=str(fields.get("task")), cron=fields.get("cron"),
                every=fields.get("every"),
                tz=fields.get("tz") if fields.get("cron") else None, args=fields.get("args", ()),
                kwargs=fields.get("kwargs"), queue=fields.get("queue"),
                catch_up=fields.get("catch_up") or "latest",
                source=f"published by {fields.get('node')} ({fields.get('source')})"))
        except (TypeError, ValueError):
            continue  # written by another version: not ours to read
    return found
