"""The event log of a chaos run: what was done, to whom, and when (wall clock)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# Faults whose victims lose their unsettled work: these may explain a duplicate.
KILLS = frozenset({"child_kill", "node_kill", "redis_kill", "partition", "master_kill"})


@dataclass(slots=True)
class Event:
    """One action of the harness (or a kill the master did on its own, read from its log).

    `before`/`after` bracket the action (epoch seconds). For kills, `held`
    lists the job ids the victims' consumers had pending just before, and
    `recovered` is when those entries were no longer held by them (for a
    Redis kill: when a job was settled again), measured by a watcher.
    """

    kind: str
    before: float
    after: float
    node: str = ""
    pid: int = 0
    consumers: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    detail: str = ""
    recovered: float | None = None
    watched: bool = False

    @property
    def recovery(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.after


@dataclass
class EventLog:
    started: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: Event) -> Event:
        with self._lock:
            self.events.append(event)
        return event

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def of(self, *kinds: str) -> list[Event]:
        return [event for event in self.snapshot() if event.kind in kinds]

    def describe(self, event: Event) -> str:
        what = f"{event.kind:<13}"
        if event.node:
            what += f" {event.node}"
        if event.pid:
            what += f" pid {event.pid}"
        if event.held:
            what += f" holding {len(event.held)}"
        if event.recovery is not None:
            what += f" recovered in {event.recovery:.2f}s"
        elif event.watched:
            what += " NOT RECOVERED"
        if event.detail:
            what += f" ({event.detail})"
        return f"  +{event.before - self.started:7.2f}s {what}"


def stall_allowance(event: Event, events: list[Event], node_queues: dict[str, str]) -> float:
    """Seconds a kill's recovery may take beyond its bound because other faults overlapped it.

    A killed node's jobs can only be taken by a live node that reads their queue,
    and nothing is settled while Redis is down: a run in which the only other
    reader of `default` was killed a second after the first node (seen: chaos-1,
    then chaos-2, then two Redis kills, 8.03 s against an 8 s bound) is not a slow
    recovery. So the overlap of the window with every downtime of a node sharing
    a queue with the victim counts, and 10 s for each Redis kill in the window.
    """
    if event.recovered is None:
        return 0.0
    start, end = event.after, event.recovered
    shared = set(node_queues.get(event.node, "").split(","))
    allowance = 0.0
    for index, down in enumerate(events):
        if down is event or not start - 15.0 <= down.before <= end:
            continue
        if down.kind == "redis_kill":
            allowance += 10.0
        elif (down.kind in ("node_kill", "term_restart") and down.node != event.node
              and shared & set(node_queues.get(down.node, "").split(","))):
            back = next((later.after for later in events[index + 1:]
                         if later.kind == "node_start" and later.node == down.node), end)
            allowance += max(0.0, min(back, end) - max(down.before, start))
    return allowance
