"""What every part of the Broker shares: the client, the loaded scripts, the caches.

`Broker` (broker/streams.py) is composed of mixins, one job each (producing.py,
taking.py, settling.py, recovering.py, chores.py); they all read the state set
up here, once, so the hot path finds its scripts and caches as plain instance
attributes, with no lookup through another object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis

from supervisor.broker import replicas, scripts
from supervisor.broker.cluster import commands_for
from supervisor.broker.direct import DirectCommands, DirectScript
from supervisor.broker.enqueue import QueueKeys
from supervisor.broker.fetching import Fetcher
from supervisor.broker.limits import LimitGate
from supervisor.broker.queue_registry import QueueRegistry
from supervisor.broker.shards_away import ShardsAway

T = TypeVar("T")


class BrokerBase:
    """The state of a Broker over one client, and the two helpers all its parts use."""

    def __init__(self, client: redis.Redis, *, dead_letter_max: int = 100_000,
                 wait_replicas: int = 0, wait_timeout: float = 1.0) -> None:
        # Typed loosely: redis-py's stubs do not model decode_responses=True.
        self.client: Any = client
        self.dead_letter_max = dead_letter_max
        # WAIT after each enqueue and settle, in the same round trip and on the
        # same connection as the write (WAIT counts that connection's writes).
        self.wait: tuple[str, int, int] | None = (
            ("WAIT", wait_replicas, max(1, int(wait_timeout * 1000))) if wait_replicas else None)
        self._promote = scripts.load(client, "promote")
        # The per-batch commands (fetch, mark taken, settle) skip redis-py's
        # per-call machinery: see direct.py.
        self.direct: Any = commands_for(client)  # DirectCommands; routed per slot on a cluster
        self.sharded = not isinstance(self.direct, DirectCommands)
        self._settle = DirectScript(self.direct, scripts.load(client, "settle"))
        self._enqueue = DirectScript(self.direct, scripts.load(client, "enqueue"))
        self._take = DirectScript(self.direct, scripts.load(client, "take"))
        self._handback = scripts.load(client, "handback")
        self._claim_dead = scripts.load(client, "claim_dead")
        self.workflow = scripts.load(client, "workflow")
        self._workflow = DirectScript(self.direct, self.workflow)
        # Queues of the last fetch whose cancel set was not empty (see fetch).
        self.cancels_seen: set[str] = set()
        self._queue_keys: dict[tuple[str, int], QueueKeys] = {}
        # On a cluster: the queues whose shard does not answer, skipped for a moment by
        # the fetch and the chores so the other shards' queues go on (shards_away.py).
        self.away = ShardsAway() if self.sharded else None
        self._registry = QueueRegistry(sharded=self.sharded)  # names added to sv:queues
        self._fetcher = Fetcher(self.direct, DirectScript(self.direct,
                                                          scripts.load(client, "fetch")),
                                self.away)
        self._recent: dict[str, tuple[str, ...]] = {}
        self._limits: dict[str, tuple[str, ...]] = {}
        self._gate: LimitGate | None = None  # made by the first batch with limited jobs

    def _write(self, script: DirectScript, command: Sequence[Any]) -> Any:
        """Run a script's EVALSHA; with --wait-replicas, WAIT for the replicas after it."""
        if self.wait is None:
            return script.run(command)
        return replicas.run_and_wait(self.direct, script, command, self.wait)

    def _each(self, queues: Iterable[str], call: Callable[[str], T]) -> list[T]:
        """`call(queue)` for each queue; on a cluster the queues of a shard that does not
        answer are skipped for a moment (shards_away.py), raised only if none answered."""
        if self.away is None:
            return [call(queue) for queue in queues]
        return self.away.each(queues, call)
