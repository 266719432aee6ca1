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
