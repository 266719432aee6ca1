"""A chaos run: three nodes, a steady producer, random faults, then the accounting.

`run_chaos(settings)` starts a private broker (append-only, `appendfsync
always`) and ledger, three `supervisor run` nodes reading overlapping sets of
three queues (chaos_cluster.NODE_QUEUES), a producer thread spreading jobs
over those queues, and the
fault injector (seeded: the seed is printed, and `CHAOS_SEED` replays the
same choices); after `seconds` of faults it brings every node back, waits
(bounded) for the queue to drain, and returns a `ChaosReport`: jobs
enqueued, executed, lost, duplicated (each attributed to a kill, see
chaos_accounting), faults by kind with the worst recovery times, and the
memory check (chaos_memory).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chaos_accounting
import chaos_ledger
from chaos_cluster import NODE_QUEUES, Cluster
from chaos_events import Event, EventLog
from chaos_faults import FaultInjector
from chaos_memory import MemoryReport, settle_and_measure, used_memory
from chaos_producer import SteadyProducer
from chaos_tasks import QUEUES

import supervisor.api.producer as producer_module
from supervisor.broker import keys
from supervisor.broker.inspect import queue_stats
from supervisor.errors import EXIT_REDIS_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    seconds: float = 60.0
    seed: int = field(default_factory=lambda: random.randrange(1, 1_000_000))
    rate: float = 30.0  # jobs enqueued per second
    heartbeat_timeout: float = 3.0
    result_ttl: int = 10
    drain_timeout: float = 90.0
    sentinel: bool = False  # the broker is a Sentinel deployment; its faults are failovers

    @classmethod
    def from_env(cls, **defaults: Any) -> ChaosSettings:
        settings = cls(**defaults)
        if os.environ.get("CHAOS_SECONDS"):
            settings = cls(**{**defaults, "seconds": float(os.environ["CHAOS_SECONDS"])})
        if os.environ.get("CHAOS_SEED"):
            seed = int(os.environ["CHAOS_SEED"])
            settings = cls(**{**defaults, "seconds": settings.seconds, "seed": seed})
        return settings


@dataclass
class ChaosReport:
    settings: ChaosSettings
    accounting: chaos_accounting.Accounting
    events: list[Event]
    table: list[str]
    memory: MemoryReport
    drained: bool
    dead_letters: int
    term_exits: list[str]  # of TERM restarts: "exit N" (see term_exit)
    stuck: dict[str, int]
    states: dict[str, int]  # job records still alive at the end, by state
    per_queue: dict[str, int]  # jobs enqueued, by queue
    waits: int = 0  # WAIT calls the final master took (--wait-replicas, on Sentinel)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # unexplained -> log lines
    failed_attempts: list[str] = field(default_factory=list)  # none expected (see the test)

    def summary(self) -> str:
        a = self.accounting
        faults = [e for e in self.events if e.kind not in ("node_start", "producer_retry")]
        return (f"CHAOS seed={self.settings.seed} seconds={self.settings.seconds:.0f}: "
                f"enqueued={a.enqueued} executed={a.executed} lost={len(a.lost)} "
                f"duplicated={len(a.duplicated)} (extra runs {a.extra_runs}, unexplained "
                f"{len(a.unexplained)}) dead={self.dead_letters} faults={len(faults)} "
                f"drained={self.drained}")

    def render(self, log: EventLog) -> str:
        spread = ", ".join(f"{queue} {count}" for queue, count in sorted(self.per_queue.items()))
        readers = "; ".join(f"{node} reads {queues}" for node, queues in NODE_QUEUES.items())
        lines = [self.summary(), f"jobs by queue: {spread} ({readers})", "", *self.table, "",
                 self.memory.line(),
                 f"job records alive at the end, by state: {self.states}"]
        for job_id, runs in sorted(self.accounting.duplicated.items()):
            why = ", ".join(self.accounting.explained_by.get(job_id, [])) or "UNEXPLAINED"
            where = ", ".join(f"{r.node}/{r.pid}@+{r.start - log.started:.2f}s" for r in runs)
            lines.append(f"duplicate {job_id}: {where} <- {why}")
        for item in self.accounting.unexplained:
            lines.append(f"UNEXPLAINED {item.job_id}: {item.earlier} then {item.later}")
            lines += self.evidence.get(item.job_id, [])
        lines += [f"FAILED ATTEMPT {line}" for line in self.failed_attempts[:20]]
        if self.stuck:
            lines.append(f"STUCK pending entries by consumer: {self.stuck}")
        lines.append("events:")
        lines += [log.describe(event) for event in self.events]
        return "\n".join(lines)


def term_exit(event: Event, cluster: Cluster) -> str:
    """A TERM restart's exit ("exit N"). A node TERMed while its workers still waited for
    Redis at boot (it started during a failover, say) never served, and exits
    EXIT_REDIS_UNAVAILABLE to say so (master/startup.py): read as the graceful stop it
    is when its log says that, as "exit 0 (never served)"."""
    log_path = next(node.log_path for node in cluster.nodes if node.name == event.node)
    if event.detail == f"exit {EXIT_REDIS_UNAVAILABLE}" and chaos_ledger.never_served(
            log_path, event.pid):
        return "exit 0 (never served)"
    return event.detail


def drain(cluster: Cluster, producer: SteadyProducer, timeout: float) -> bool:
    """Wait (bounded) until nothing waits, runs or is scheduled, and every job finished once."""
    client, ledger = cluster.client(), cluster.ledger()
    confirmed = list(producer.confirmed)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stats = [queue_stats(client, queue) for queue in QUEUES]
            if all(q.waiting == 0 and q.running == 0 and q.scheduled == 0 for q in stats):
                runs = chaos_ledger.executions(ledger, confirmed)
                if all(any(e.end is not None for e in r) for r in runs.values()):
                    return True
        except Exception:  # noqa: BLE001,S110 - a broker restart at the very end
            pass
        time.sleep(0.2)
    return False


def record_states(client: Any, queue_of: dict[str, str]) -> dict[str, int]:
    """State -> count over the job records still alive (the rest expired after settling)."""
    states: dict[str, int] = {}
    records = [keys.job(queue, job_id) for job_id, queue in queue_of.items()]
    for at in range(0, len(records), 1000):
        for raw in client.mget(records[at:at + 1000]):
            if raw is not None:
                state = str(json.loads(raw).get("state"))
                states[state] = states.get(state, 0) + 1
    return states


def stuck_entries(client: Any) -> dict[str, int]:
    from chaos_faults import consumers

    return {name: count for name, count in consumers(client, "").items() if count}


def run_chaos(settings: ChaosSettings, workdir: Path) -> tuple[ChaosReport, EventLog]:
    print(f"chaos: seed {settings.seed} ({settings.seconds:.0f}s of faults); "
          f"replay with CHAOS_SEED={settings.seed}", flush=True)
    cluster = Cluster(workdir, heartbeat_timeout=settings.heartbeat_timeout,
                      result_ttl=settings.result_ttl, sentinel=settings.sentinel)
    log = EventLog()
    try:
        cluster.start()
        producer_module.configure(redis_url=cluster.broker_url, result_ttl=settings.result_ttl,
                                  wait_replicas=cluster.wait_replicas)
        client = cluster.client()
        baseline = used_memory(client)
        log.started = time.time()
        injector = FaultInjector(cluster, log, settings.seed, time.time() + settings.seconds)
        producer = SteadyProducer(log, settings.seed + 1, settings.rate, f"c{settings.seed}")
        producer.start()
        injector.start()
        injector.join(settings.seconds + 120)
        producer.stop()
        for thread in (injector, producer):
            if thread.error is not None:
                raise thread.error
        injector.finish()
        drained = drain(cluster, producer, settings.drain_timeout)
        stuck = {} if drained else stuck_entries(client)
        confirmed = list(producer.confirmed)
        states = record_states(client, {job: producer.queue_of[job] for job in confirmed})
        runs = chaos_ledger.executions(cluster.ledger(), confirmed)
        events = log.snapshot()
        for node in cluster.nodes:
            events += chaos_ledger.master_kills(node.log_path, node.name)
        events.sort(key=lambda event: event.before)
        accounting = chaos_accounting.account(confirmed, runs, events)
        dead = sum(queue_stats(client, queue).dead for queue in QUEUES)
        memory = settle_and_measure(client, baseline, settings.result_ttl + 20.0)
        report = ChaosReport(
            settings, accounting, events, chaos_accounting.recovery_table(events, runs), memory,
            drained, dead, [term_exit(e, cluster) for e in events if e.kind == "term_restart"],
            stuck,
            states, dict(Counter(producer.queue_of[job] for job in confirmed)),
            int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)),
            {item.job_id: chaos_ledger.evidence([node.log_path for node in cluster.nodes],
                                                item.job_id, item.earlier.pid)
             for item in accounting.unexplained},
            chaos_ledger.failed_attempts([node.log_path for node in cluster.nodes]))
        return report, log
    finally:
        producer_module._overrides.clear()
        producer_module._producer = None
        cluster.stop()
