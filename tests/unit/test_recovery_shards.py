"""Recovery per queue: a queue whose shard does not answer stalls its own recovery only,
and the claim of another node's consumer names that node (its heartbeat on the queue's
shard is checked by the claim script)."""

from __future__ import annotations

import redis

from supervisor.broker.streams import Claimed, Delivery
from supervisor.config import Config
from supervisor.core.job import Job, decode
from supervisor.worker.metrics import NullMetrics
from supervisor.worker.recovery import Recovery


class ShardedBroker:
    """Queues on shards; the shard of `down` does not answer."""

    def __init__(self, down: str, held: dict[str, str]) -> None:
        self.down = down
        self.held = held  # queue -> the message the dead consumer held there
        self.claims: list[tuple[str, str, str | None]] = []
        self.asked: list[tuple[str | None, frozenset[str]]] = []

    def _answer(self, queue: str) -> None:
        if queue == self.down:
            raise redis.exceptions.ConnectionError(f"the shard of {queue} is down")

    def consumers(self, queue: str) -> list[dict[str, object]]:
        self._answer(queue)
        return [{"name": "other/7/1.00"}, {"name": "unit/999999/1.00"}]

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]:
        self.asked.append((queue, frozenset(names)))
        return set()

    def claim_dead(self, queue: str, dead: str, claimer: str, batch: int = 500,
                   *, node: str | None = None) -> list[Claimed]:
        self._answer(queue)
        self.claims.append((queue, dead, node))
        if dead != "other/7/1.00" or queue not in self.held:
            return []
        return [Claimed(Delivery(queue, "1-0", self.held[queue]), 10, 1)]


def test_a_queue_on_a_down_shard_does_not_stop_the_recovery_of_the_others() -> None:
    from supervisor.api.registry import task

    @task(name="tests.recovery_shards.t")
    def t() -> None:
        return None

    # The dead consumer held one job in qa and one in qb (whose shard is down).
    held = {queue: Job(id=f"job-{queue}", task="tests.recovery_shards.t", queue=queue).encode()
            for queue in ("qa", "qb")}
    broker = ShardedBroker("qb", held)
    config = Config(queues=("qa", "qb", "qc"), node_name="unit")
    recovery = Recovery(config, "unit/1/1.00", broker, NullMetrics(),  # type: ignore[arg-type]
                        lambda delivery: None)  # type: ignore[arg-type, return-value]
    settle, requeue = recovery.sweep(["qa", "qb", "qc"])
    assert [job_id for _, _, job_id, *_ in requeue] == ["job-qa"]
    assert not settle
    # What it held in the unread queue is unknown: its job of qa does not count as
    # having killed it alone (back a suspect, its crash count unchanged).
    back = [decode(message) for _, message, *_ in requeue]
    assert all(job.suspect and job.crashes == 0 for job in back)
    assert isinstance(recovery.unreachable, redis.exceptions.ConnectionError)
    # Another node's consumer is claimed naming its node; a dead local process without.
    assert ("qa", "other/7/1.00", "other") in broker.claims
    assert ("qa", "unit/999999/1.00", None) in broker.claims
    assert {queue for queue, _ in broker.asked} == {"qa", "qc"}  # liveness per queue
    broker.down = ""
    recovery.sweep(["qb"])
    assert recovery.unreachable is None
