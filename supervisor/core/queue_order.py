"""Which of a worker's queues a fetch reads, and how many jobs of each (pure).

`--queues a,b,c` is a strict order: a fetch takes from `a` as much as it has
(up to the fetch's count), then from `b`, then `c`. `--queues a:6,b:3,c:1` is
weighted: each round's count is shared 6:3:1 by deficit round robin (every
round credits each queue its share, count * weight / total; a queue gets the
whole jobs of its credit, the remainders going to the largest fractions), so
over rounds the mix of fetched jobs follows the weights exactly while every
queue has work. A queue found short of work gives the rest of its quota to the
others, in their order (no fetch takes less because one queue is empty), and
banks no credit for the jobs it did not have: it cannot come back with a
burst. A queue whose share of a round is at least one job gets at least one
in every round it has work; a smaller share (weight 1 of 100 with a count of
10) is served once its credit reaches a job, i.e. every ceil(1 / share) rounds.

The broker applies a plan (fetch.lua in one step on one server; round by
round on a cluster, see `refill`); this module decides it and is tested on a
fake state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class QueueOrder:
    """The plan of each fetch for one worker's queues (strict without weights)."""

    def __init__(self, queues: Sequence[str], weights: Sequence[int] = ()) -> None:
        if weights and len(weights) != len(queues):
            raise ValueError("one weight per queue, or none")
        self.queues = tuple(queues)
        self.weights = tuple(weights)
        self.credit = [0.0] * len(queues)

    @property
    def weighted(self) -> bool:
        return bool(self.weights) and len(self.queues) > 1

    def plan(self, count: int, queues: Sequence[str] | None = None) -> list[tuple[str, int]]:
        """(queue, quota) in the order to read, for a fetch of `count` jobs among `queues`
        (the unpaused ones; default all). Strict: the first gets all, the others fill in."""
        names = self.queues if queues is None else tuple(queues)
        if not self.weighted:
            return [(name, count if index == 0 else 0) for index, name in enumerate(names)]
        index_of = {name: i for i, name in enumerate(self.queues)}
        chosen = [index_of[name] for name in names]
        total = sum(self.weights[i] for i in chosen)
        shares = {i: count * self.weights[i] / total for i in chosen}
        for i in chosen:
            self.credit[i] += shares[i]
        quotas = {i: max(0, math.floor(self.credit[i])) for i in chosen}
        spare = count - sum(quotas.values())
        by_fraction = sorted(chosen, key=lambda i: self.credit[i] - quotas[i], reverse=True)
        for i in by_fraction[:max(0, spare)]:
            quotas[i] += 1
        self._at_least_one(chosen, shares, quotas)
        return [(self.queues[i], quotas[i]) for i in chosen]

    @staticmethod
    def _at_least_one(chosen: list[int], shares: dict[int, float],
                      quotas: dict[int, int]) -> None:
        """A queue whose share of the round is a job or more gets one this round (its
        credit pays for it later), taken from the largest quota."""
        for i in chosen:
            if quotas[i] == 0 and shares[i] >= 1:
                donor = max(chosen, key=lambda j: quotas[j])
                if quotas[donor] > 1:
                    quotas[donor] -= 1
                    quotas[i] = 1

    def took(self, plan: Sequence[tuple[str, int]], got: dict[str, int]) -> None:
        """After the fetch: charge each queue its quota; one short of work banks nothing."""
        if not self.weighted:
            return
        index_of = {name: i for i, name in enumerate(self.queues)}
        for name, quota in plan:
            i = index_of[name]
            if got.get(name, 0) < quota:
                self.credit[i] = 0.0  # it had less than its share: no credit for later
            else:
                self.credit[i] -= quota


def refill(plan: Sequence[tuple[str, int]], got: dict[str, int], count: int) -> list[str]:
    """The queues that may still have work, in order, when a fetch took less than `count`:
    those that gave all their quota asked (what fetch.lua's second pass reads)."""
    if sum(got.values()) >= count:
        return []
    return [name for name, quota in plan if got.get(name, 0) >= quota]
