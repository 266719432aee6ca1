"""Memory stays bounded: what must be left in the broker after the queue drained.

After a drained run (every queue of the run, chaos_tasks.QUEUES): the
streams are empty, the `running` hashes are empty, no
consumer of a dead process is left (after a few sweeps), job records have
expired (the run uses a short result TTL), every key left without a TTL is
one of a fixed set (the queue registry, the empty stream, the registry of
node names when the product keeps one), and the dataset's memory is back near its
value before the first job. Keys with a TTL (heartbeats, per-second
counters) are bounded by their expiry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from chaos_tasks import QUEUES

from supervisor.broker import keys
from supervisor.core.consumer import ConsumerName
from supervisor.worker.recovery import process_alive

# Permanent keys of a fixed size; NODESTATES (node name -> last report) is
# bounded by the number of node names.
ALLOWED_KEYS = {keys.QUEUES, *(keys.stream(queue) for queue in QUEUES),
                str(getattr(keys, "NODESTATES", ""))}


@dataclass
class MemoryReport:
    before: int
    after: int = 0
    stream_length: int = -1
    running: int = -1
    dead_consumers: list[str] = field(default_factory=list)
    leftover_keys: list[str] = field(default_factory=list)

    @property
    def growth(self) -> int:
        return self.after - self.before

    def line(self) -> str:
        return (f"memory: used_memory_dataset {self.before / 1024:.0f} KiB before, "
                f"{self.after / 1024:.0f} KiB after ({self.growth / 1024:+.0f} KiB); "
                f"stream {self.stream_length}, running {self.running}, "
                f"dead consumers {len(self.dead_consumers)}, leftover keys "
                f"{len(self.leftover_keys)}")


def used_memory(client: Any) -> int:
    """What the keys take (used_memory_dataset): used_memory also counts the server's own
    buffers, and on Sentinel the final master is not the first one: its replication
    backlog (1 MiB) and its replicas' output buffers were allocated during the run and
    showed as growth the product did not cause."""
    return int(client.info("memory")["used_memory_dataset"])


def dead_consumers(client: Any) -> list[str]:
    """Consumers of a dead process still registered in some queue's group."""
    dead = []
    for queue in QUEUES:
        for consumer in client.xinfo_consumers(keys.stream(queue), keys.GROUP):
            name = ConsumerName.parse(str(consumer["name"]))
            if name is None or not process_alive(name):
                dead.append(f"{queue}:{consumer['name']}")
    return dead


def leftover_keys(client: Any) -> list[str]:
    """Job records still alive, and keys without a TTL outside the fixed set."""
    left = []
    for key in client.scan_iter(count=1000):
        if any(key.startswith(keys.job_prefix(queue)) for queue in QUEUES) or (
                key not in ALLOWED_KEYS and int(client.ttl(key)) < 0):
            left.append(key)
    return sorted(left)


def settle_and_measure(client: Any, before: int, timeout: float) -> MemoryReport:
    """Wait (bounded) until dead consumers are swept and job records expired, then measure."""
    report = MemoryReport(before)
    deadline = time.monotonic() + timeout
    while True:
        report.dead_consumers = dead_consumers(client)
        report.leftover_keys = leftover_keys(client)
        if (not report.dead_consumers and not report.leftover_keys) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    report.stream_length = sum(int(client.xlen(keys.stream(queue))) for queue in QUEUES)
    report.running = sum(int(client.hlen(keys.running(queue))) for queue in QUEUES)
    report.after = used_memory(client)
    return report
