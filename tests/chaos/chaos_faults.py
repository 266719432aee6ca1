"""The fault injector: seeded random faults against a running cluster, with watchers.

Sleeping between faults is the workload's pace, not synchronisation. Each
kill starts a watcher thread that polls Redis until the victims' consumers
hold nothing (for a Redis kill: until a job is settled again), which gives
the recovery time of that fault.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from chaos_cluster import Cluster, Node
from chaos_events import Event, EventLog
from chaos_tasks import QUEUES

from supervisor.broker import keys
from supervisor.core.job import peek_id

MAX_WORKERS = 4
# TTOU never takes a node below two workers: the 1 s bound for a dead child
# needs a live sibling on its node (a lone worker's jobs wait for its
# replacement, whose start the crash back-off may delay; see the README).
MIN_WORKERS = 2
WEIGHTS = {"child_kill": 4.0, "node_kill": 2.0, "term_restart": 1.5, "redis_kill": 1.0,
           "hup": 1.0, "ttin": 1.0, "ttou": 1.0}
SENTINEL_FAILOVER_WEIGHT = 3.0  # on Sentinel: a failover or a master kill, ~1 fault in 4
FAILOVER_SPACING = 12.0  # seconds between two failovers on Sentinel
WATCH_TIMEOUT = 60.0


def consumers(client: Any, prefix: str, queues: tuple[str, ...] = QUEUES) -> dict[str, int]:
    """Consumer name -> pending count over `queues`, for names starting with `prefix`.

    A worker reading several queues is one consumer name in each queue's group.
    """
    counts: dict[str, int] = {}
    for queue in queues:
        try:
            found = client.xinfo_consumers(keys.stream(queue), keys.GROUP)
        except redis.exceptions.ResponseError:  # no such stream (yet)
            continue
        for consumer in found:
            name = str(consumer["name"])
            if name.startswith(prefix):
                counts[name] = counts.get(name, 0) + int(consumer["pending"])
    return counts


def held_jobs(client: Any, names: list[str], queues: tuple[str, ...] = QUEUES
              ) -> tuple[str, ...]:
    """Job ids pending for these consumers, in any of `queues`."""
    jobs: list[str] = []
    for queue in queues:
        stream = keys.stream(queue)
        for name in names:
            try:
                pending = client.xpending_range(stream, keys.GROUP, min="-", max="+",
                                                count=10_000, consumername=name)
            except redis.exceptions.ResponseError:
                continue
            for entry in pending:
                found = client.xrange(stream, entry["message_id"], entry["message_id"])
                if found:
                    jobs.append(peek_id(found[0][1].get("m", "")) or "?")
    return tuple(jobs)


def holding(client: Any, names: tuple[str, ...]) -> int:
    current = consumers(client, "")
    return sum(current.get(name, 0) for name in names)


def settled_mark(client: Any) -> tuple[str, ...]:
    """Changes whenever a job of any queue is settled (its entry deleted)."""
    marks = []
    for queue in QUEUES:
        try:
            info = client.xinfo_stream(keys.stream(queue))
        except redis.exceptions.ResponseError:  # no such stream (yet)
            marks.append("")
            continue
        marks.append(str(info.get("max-deleted-entry-id", "")))
    return tuple(marks)


class FaultInjector(threading.Thread):
    """Injects faults until `until` (epoch seconds); `finish()` brings every node back."""

    def __init__(self, cluster: Cluster, log: EventLog, seed: int, until: float,
                 gap: tuple[float, float] = (0.8, 2.5)) -> None:
        super().__init__(name="fault-injector", daemon=True)
        self.cluster = cluster
        self.log = log
        self.rng = random.Random(seed)
        self.until = until
        self.gap = gap
        self.restarts: list[tuple[float, Node]] = []
        self.watchers: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.client = cluster.client()
        self.last_failover = 0.0
        self.expected_master: int | None = None  # on Sentinel: the master after our last failover

    # --- the loop --------------------------------------------------------------

    def run(self) -> None:
        try:
            while time.time() < self.until:
                time.sleep(self.rng.uniform(*self.gap))
                self.restart_due(time.time())
                self.restart_exited()
                kind = self.pick()
                if kind:
                    getattr(self, kind)()
        except BaseException as exc:  # noqa: BLE001 - handed to the harness thread
            self.error = exc

    def finish(self) -> None:
        """After the run: restart what is down, wait until ready, let watchers end."""
        self.restart_due(float("inf"))
        for node in self.cluster.nodes:
            if not node.running:
                self.restart(node)
        for node in self.cluster.nodes:
            node.wait_ready()
        for watcher in self.watchers:
            watcher.join(WATCH_TIMEOUT)

    def restart_exited(self) -> None:
        """A node that stopped on its own (not by a fault of ours) is logged and started again."""
        scheduled = {id(node) for _, node in self.restarts}
        for node in self.cluster.nodes:
            if node.process is not None and not node.running and id(node) not in scheduled:
                now = time.time()
                self.log.add(Event("node_exited", now, now, node.name, node.pid,
                                   detail=f"exit {node.process.returncode}: {node.last_error()}"))
                self.restart(node)

    def signalable(self) -> list[Node]:
        """Running nodes whose master has installed its handlers (it has forked)."""
        return [node for node in self.cluster.nodes if node.running and node.children()]

    def pick(self) -> str:
        nodes = self.signalable()
        feasible = {
            "child_kill": bool(nodes),
            "node_kill": len(nodes) >= 2,
            "term_restart": len(nodes) >= 2,
            # Sentinel starts no new failover of a master within twice its
            # failover-timeout (5 s in ha_servers) of the last one.
            "redis_kill": self.cluster.sentinel is None
            or time.time() - self.last_failover > FAILOVER_SPACING,
            "hup": bool(nodes),
            "ttin": any(node.workers < MAX_WORKERS for node in nodes),
            "ttou": any(node.workers > MIN_WORKERS for node in nodes),
        }
        if self.cluster.sentinel is not None and not self.last_failover:
            return "redis_kill"  # every Sentinel run has its failover (the test checks)
        kinds = [kind for kind, ok in feasible.items() if ok]
        weights = dict(WEIGHTS)
        if self.cluster.sentinel is not None:  # the Sentinel mode is there for its failovers
            weights["redis_kill"] = SENTINEL_FAILOVER_WEIGHT
        return self.rng.choices(kinds, weights=[weights[kind] for kind in kinds])[0]

    # --- faults ----------------------------------------------------------------

    def child_kill(self) -> None:
        node = self.rng.choice(self.signalable())
        children = node.children()
        busy = [c for c in children if _title(c).find(" busy") >= 0]
        victim = self.rng.choice(busy if busy and self.rng.random() < 0.8 else children)
        before = time.time()
        try:
            victim.send_signal(signal.SIGKILL)
        except Exception:  # noqa: BLE001 - it died on its own meanwhile
            return
        event = Event("child_kill", before, time.time(), node.name, victim.pid)
        self.watch_consumers(event, f"{node.name}/{victim.pid}/")

    def node_kill(self) -> None:
        node = self.rng.choice(self.signalable())
        before = time.time()
        node.kill_group()
        event = Event("node_kill", before, time.time(), node.name, node.pid,
                      detail=f"restart in {self.schedule_restart(node):.1f}s")
        self.watch_consumers(event, f"{node.name}/")

    def term_restart(self) -> None:
        node = self.rng.choice(self.signalable())
        before = time.time()
        code = node.terminate(timeout=45)
        self.log.add(Event("term_restart", before, time.time(), node.name, node.pid,
                           detail=f"exit {code}"))
        self.restart(node)

    def redis_kill(self) -> None:
        before = time.time()
        if self.cluster.sentinel is not None:
            detail = self.failover()
            after = time.time()
        else:
            self.cluster.broker.kill()
            after = time.time()
            self.cluster.broker.start()
            detail = f"back after {time.time() - before:.2f}s"
        event = Event("redis_kill", before, after, detail=detail)
        mark = _retry(lambda: settled_mark(self.client))
        self.watch(event, lambda: settled_mark(self.client) != mark)

    def failover(self) -> str:
        """On Sentinel: SENTINEL FAILOVER, or SIGKILL of the master (restarted once the
        sentinels promoted a replica, so it comes back as a replica)."""
        deployment = self.cluster.sentinel
        old = deployment.master_port()
        if self.expected_master is not None and old != self.expected_master:
            # Not ours: the sentinels failed a master over on their own (it answered
            # their PINGs late, down-after-milliseconds being 1 s, on a loaded machine).
            # Logged so a run reads right; --wait-replicas 1 keeps it from losing writes.
            now = time.time()
            self.log.add(Event("unplanned_failover", now, now, detail=(
                f"the sentinels moved the master {self.expected_master} -> {old} by "
                "themselves")))
        self.last_failover = time.time()
        from ha_servers import wait_for

        # Both want the replicas in sync with the master (one that just came back is
        # reconfigured by the sentinels within ~10 s).
        wait_for(deployment.replicas_in_sync, 60, "replicas in sync before a failover")
        if self.rng.random() < 0.5:
            new = deployment.failover()
            self.last_failover = time.time()
            self.expected_master = new
            return f"SENTINEL FAILOVER {old} -> {new}"
        victim = deployment.server(old)
        new = deployment.kill_master()
        victim.start()
        self.last_failover = time.time()
        self.expected_master = new
        return f"kill -9 of master {old}, {new} promoted, {old} back"

    def hup(self) -> None:
        node = self.signal_node("hup", signal.SIGHUP, self.signalable())
        # A reload starts the configured worker count, dropping TTIN/TTOU
        # adjustments (README, signals): without this the injector's count
        # drifted from the master's, a later TTOU took a node below
        # MIN_WORKERS, and finish() waited for a worker that was never asked for.
        node.workers = node.base_workers

    def ttin(self) -> None:
        node = self.signal_node("ttin", signal.SIGTTIN,
                                [n for n in self.signalable() if n.workers < MAX_WORKERS])
        node.workers += 1

    def ttou(self) -> None:
        node = self.signal_node("ttou", signal.SIGTTOU,
                                [n for n in self.signalable() if n.workers > MIN_WORKERS])
        node.workers -= 1

    # --- helpers -----------------------------------------------------------------

    def signal_node(self, kind: str, signum: int, nodes: list[Node]) -> Node:
        node = self.rng.choice(nodes)
        before = time.time()
        node.send(signum)
        self.log.add(Event(kind, before, time.time(), node.name, node.pid))
        return node

    def schedule_restart(self, node: Node) -> float:
        """A killed node comes back after its heartbeat expired, so other nodes reclaim first."""
        delay = self.cluster.heartbeat_timeout + self.rng.uniform(1.0, 3.0)
        self.restarts.append((time.time() + delay, node))
        return delay

    def restart_due(self, now: float) -> None:
        for due, node in list(self.restarts):
            if due <= now:
                self.restarts.remove((due, node))
                self.restart(node)

    def restart(self, node: Node) -> None:
        before = time.time()
        node.start()
        self.log.add(Event("node_start", before, time.time(), node.name, node.pid))

    def watch_consumers(self, event: Event, prefix: str) -> None:
        names = tuple(_retry(lambda: consumers(self.client, prefix)))
        event.consumers = names
        event.held = _retry(lambda: held_jobs(self.client, list(names)))
        if event.held:
            self.watch(event, lambda: holding(self.client, names) == 0)
        else:
            self.log.add(event)

    def watch(self, event: Event, done: Callable[[], bool]) -> None:
        event.watched = True
        self.log.add(event)

        def poll() -> None:
            deadline = time.time() + WATCH_TIMEOUT
            while time.time() < deadline:
                try:
                    if done():
                        event.recovered = time.time()
                        return
                except redis.exceptions.RedisError:
                    pass
                time.sleep(0.02)

        watcher = threading.Thread(target=poll, name=f"watch-{event.kind}", daemon=True)
        watcher.start()
        self.watchers.append(watcher)


def _title(process: Any) -> str:
    try:
        return " ".join(process.cmdline())
    except Exception:  # noqa: BLE001 - gone meanwhile
        return ""


def _retry(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """A read right after a Redis restart may meet a loading server: retry briefly."""
    deadline = time.time() + timeout
    while True:
        try:
            return call()
        except redis.exceptions.RedisError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
