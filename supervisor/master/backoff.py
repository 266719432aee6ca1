"""Per-slot exponential backoff for crash loops.

A slot whose child keeps dying waits 0.1 s, 0.2 s, 0.4 s ... up to 30 s before
the next spawn, so a broken deploy cannot fork-bomb the node. A child that
ran healthy for `reset_after` seconds wipes its slot's record: the next
crash is treated as the first one again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SlotBackoff:
    base: float = 0.1
    cap: float = 30.0
    reset_after: float = 10.0
    _failures: dict[int, int] = field(default_factory=dict)
    _not_before: dict[int, float] = field(default_factory=dict)

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures (0 for none)."""
        if failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2 ** min(failures - 1, 32))

    def record_exit(self, slot: int, now: float, healthy_for: float, failed: bool) -> float:
        """Note a child of `slot` ended; return how long the slot now waits."""
        if healthy_for >= self.reset_after:
            self._failures.pop(slot, None)
        if not failed:
            self._not_before.pop(slot, None)
            return 0.0
        failures = self._failures.get(slot, 0) + 1
        self._failures[slot] = failures
        wait = self.delay(failures)
        self._not_before[slot] = now + wait
        return wait

    def may_spawn(self, slot: int, now: float) -> bool:
        return now >= self._not_before.get(slot, float("-inf"))

    def failures(self, slot: int) -> int:
        return self._failures.get(slot, 0)
