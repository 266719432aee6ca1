"""Reading the schedules' last fires (the `sv:{q}:schedules` hashes).

Firing a tick is an enqueue (streams.Broker.fire_tick); this is the read both
the workers' scheduler and `supervisor schedules` need.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from supervisor.broker import keys


def last_fires(client: Any, schedules: Iterable[tuple[str, str]]) -> list[str | None]:
    """The last-fire record (JSON, or None) of each (queue, schedule name), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue, name in schedules:
        pipe.hget(keys.schedules(queue), name)
    return list(pipe.execute())
