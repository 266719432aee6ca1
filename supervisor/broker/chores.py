"""The Broker's chores between batches: due delayed jobs, workflow steps, done counts.

Each runs per queue, on a cluster skipping the queues of a shard that does not
answer (BrokerBase._each); the workflow scripts themselves are broker/workflow.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from supervisor.broker import forwarding, keys, levels, nodes, workflow
from supervisor.broker.base import BrokerBase


class Chores(BrokerBase):
    """Chores: promote, forward, apply_workflow, chord_results, add_done."""

    def forward(self, queues: Iterable[str]) -> int:
        """Move workflow steps bound for other queues on (see broker/forwarding.py)."""
        return sum(self._each(queues, lambda queue: forwarding.forward(
            self.client, self.workflow, [queue])))

    def apply_workflow(self, calls: Iterable[tuple[list[str], str]], *,
                       wait: bool = False) -> None:
        """Run workflow.lua for each (KEYS, operations), pipelined (broker/workflow.py);
        `wait`: with --wait-replicas, WAIT behind them for the replicas."""
        workflow.apply_many(self._workflow, calls, self.wait if wait else None)

    def chord_results(self, queue: str, chord_id: str, members: int) -> list[Any]:
        """A chord's member results in order, for its callback (see broker/workflow.py)."""
        return workflow.chord_results(self.client, queue, chord_id, members)

    def promote(self, queues: Iterable[str], now_ms: int, batch: int = 1000) -> int:
        """Move due delayed jobs of `queues` into their streams."""
        return sum(self._each(queues, lambda queue: int(self._promote(
            keys=[keys.delayed(queue), *levels.all_streams(queue), keys.levels(queue)],
            args=[now_ms, batch]))))

    def add_done(self, counts: dict[str, int], second: int) -> None:
        """Count settled jobs per queue for `status` jobs/s (see broker/nodes.py)."""
        nodes.add_done(self.client, counts, second)
