"""Reading the schedules' last fires (the `sv:{q}:schedules` hashes), and the
schedule definitions the workers publish (`sv:scheduledefs`).

Firing a tick is an enqueue (streams.Broker.fire_tick); this is the read both
the workers' scheduler and `supervisor schedules` need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from supervisor.broker import keys


def last_fires(client: Any, schedules: Iterable[tuple[str, str]]) -> list[str | None]:
    """The last-fire record (JSON, or None) of each (queue, schedule name), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue, name in schedules:
        pipe.hget(keys.schedules(queue), name)
    return list(pipe.execute())


# --- definitions published by the workers -------------------------------------
# Every worker that runs schedules writes their definitions (as it resolved
# them: with the queue) to one hash, at start and every PUBLISH_DEFS_EVERY
# seconds after, so `supervisor schedules` and the dashboard list what the
# cluster runs from any host, without the task modules. A definition not
# published for DEFS_FORGET_AFTER is no longer run by any worker: readers skip
# it and the next publisher deletes it.

PUBLISH_DEFS_EVERY = 60.0
DEFS_FORGET_AFTER = 600.0


def publish_definitions(client: Any, definitions: dict[str, dict[str, Any]], node: str,
                        now: float) -> None:
    """Store each schedule's definition (name -> fields) as run by `node` at `now`."""
    if not definitions:
        return
    current = {name: json.dumps({**fields, "node": node, "published_at": now}, default=str)
               for name, fields in definitions.items()}
    client.hset(keys.SCHEDULE_DEFS, mapping=current)
    stale = [name for name, at in _published(client).items()
             if name not in current and at < now - DEFS_FORGET_AFTER]
    if stale:
        client.hdel(keys.SCHEDULE_DEFS, *stale)


def _published(client: Any) -> dict[str, float]:
    times: dict[str, float] = {}
    for name, raw in client.hgetall(keys.SCHEDULE_DEFS).items():
        try:
            times[str(name)] = float(json.loads(raw).get("published_at", 0))
        except (ValueError, AttributeError, TypeError):
            times[str(name)] = 0.0
    return times


def read_definitions(client: Any, now: float) -> list[dict[str, Any]]:
    """The definitions published within DEFS_FORGET_AFTER, by name (unreadable ones skipped)."""
    found = []
    for name, raw in sorted(client.hgetall(keys.SCHEDULE_DEFS).items()):
        try:
            fields = json.loads(raw)
        except ValueError:
            continue
        if isinstance(fields, dict) and float(fields.get("published_at") or 0) >= \
                now - DEFS_FORGET_AFTER:
            found.append({**fields, "name": str(name)})
    return found
