"""The queue operations on Redis Streams: enqueue, fetch, settle, hand back, claim.

Every write that must be atomic is one Lua script (see scripts/*.lua).
`Broker` is also what a worker asks about other nodes between batches (their
liveness, its settled-job counts): the worker's one seam towards Redis.

`Broker` is composed of one mixin per job, over the state they share
(base.py): producing.py (enqueue), taking.py (fetch, mark taken), settling.py
(settle, hand back), recovering.py (dead consumers, own pending entries) and
chores.py (delayed jobs, workflow steps). The names callers use are all
importable from here.
"""

from __future__ import annotations

from typing import Any

import redis

from supervisor.broker import keys
from supervisor.broker.chores import Chores
from supervisor.broker.enqueue import EnqueueRequest, Tick
from supervisor.broker.fetching import Delivery
from supervisor.broker.producing import Producing
from supervisor.broker.recovering import Claimed, Recovering
from supervisor.broker.replicas import NotReplicated
from supervisor.broker.settling import (
    Requeue,
    Settlement,
    Settling,
    StreamLost,
    unique_of,
    wire_text,
)
from supervisor.broker.taking import Taking

__all__ = [
    "Broker", "Claimed", "Delivery", "EnqueueRequest", "NotReplicated", "Requeue",
    "Settlement", "StreamLost", "Tick", "unique_of", "wire_text",
]


class Broker(Producing, Taking, Settling, Recovering, Chores):
    """Redis Streams operations for any number of queues, over one client."""

    @classmethod
    def for_config(cls, client: redis.Redis, config: Any) -> Broker:
        """A Broker with the configuration's namespace, dead-letter cap and replica wait."""
        keys.use_namespace(config.namespace)
        return cls(client, dead_letter_max=config.dead_letter_max,
                   wait_replicas=config.wait_replicas, wait_timeout=config.wait_timeout)
