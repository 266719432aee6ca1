"""The chaos suite: random faults against three nodes under load; nothing may be lost.

The nodes read overlapping sets of three queues (one node one queue, one
node all three, one node two) and the producer spreads jobs over them.

`make test` runs the short version (60 s of faults). `make chaos` runs a long
one (CHAOS_SECONDS, default there 600) and prints the table; CHAOS_SEED
replays a run's fault choices.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from chaos_cluster import NODE_QUEUES
from chaos_events import stall_allowance
from chaos_harness import ChaosSettings, run_chaos
from chaos_tasks import QUEUES

SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))


@pytest.mark.chaos
@pytest.mark.timeout(SECONDS + 240)
def test_chaos_loses_nothing_and_explains_every_duplicate(tmp_path: Path) -> None:
    _chaos(tmp_path, ChaosSettings.from_env(seconds=60.0))


@pytest.mark.chaos
@pytest.mark.ha
@pytest.mark.timeout(SECONDS + 400)
def test_chaos_on_sentinel_with_failovers_among_the_faults(tmp_path: Path) -> None:
    """The same run on a Sentinel deployment: the broker's faults are SENTINEL FAILOVER
    and kill -9 of the master (then restarted, to rejoin as a replica)."""
    _chaos(tmp_path, ChaosSettings.from_env(seconds=60.0, sentinel=True))


def _chaos(tmp_path: Path, settings: ChaosSettings) -> None:
    # CHAOS_WORKDIR keeps the nodes' logs and Redis files of a long run (pytest
    # rotates its own temporary directories away).
    root = Path(os.environ.get("CHAOS_WORKDIR") or tmp_path)
    workdir = root / f"seed-{settings.seed}-{time.strftime('%Y%m%dT%H%M%S')}"
    print(f"\nchaos: logs and data in {workdir}")
    report, log = run_chaos(settings, workdir)
    print("\n" + report.render(log), flush=True)
    accounting = report.accounting
    seed = f"(seed {settings.seed}; replay with CHAOS_SEED={settings.seed})"
    assert report.drained, f"the queue did not drain {seed}: stuck {report.stuck}"
    assert accounting.enqueued > 0 and accounting.executed == accounting.enqueued, seed
    # The configuration covers several queues per node (a worker reading two
    # queues once lost half its jobs, and a one-queue chaos run never saw it).
    assert set(report.per_queue) == set(QUEUES), report.per_queue
    assert max(len(queues.split(",")) for queues in NODE_QUEUES.values()) >= 2
    assert accounting.lost == [], f"lost jobs {seed}: {accounting.lost[:20]}"
    # The task never raises: a failed attempt is a defect, whose retry would otherwise
    # surface only as an unexplained duplicate.
    assert report.failed_attempts == [], f"failed attempts {seed}: {report.failed_attempts[:5]}"
    assert accounting.unexplained == [], f"unexplained duplicates {seed}"
    assert report.dead_letters == 0, f"dead letters {seed}"
    assert set(report.states) <= {"succeeded"}, f"job records not succeeded: {report.states}"
    assert all(code.startswith("exit 0") for code in report.term_exits), report.term_exits
    if settings.sentinel:  # the mode is there for its failovers: at least one happened
        assert [e for e in report.events if e.kind == "redis_kill"], report.events
        # ... and its writes waited for a replica (see chaos_cluster.Cluster): the final
        # master took WAITs since its promotion.
        assert report.waits > 0, "no WAIT reached the final master"
    exited = [log.describe(e) for e in report.events if e.kind == "node_exited"]
    assert exited == [], f"nodes stopped on their own {seed}: {exited}"
    # Recovery bounds: the contract is 1 s for a child, heartbeat timeout + 2 s for
    # a node; assert only generous ones (the table reports the measured values).
    # A kill that overlapped other faults (the only other reader of its queue
    # down too, Redis killed meanwhile) gets their downtime on top.
    bound = settings.heartbeat_timeout + 5.0
    broker_faults = [e for e in report.events if e.kind == "redis_kill"]
    for event in report.events:
        if event.watched:
            # On Sentinel, a fault whose recovery overlaps a failover waits for it too.
            overlaps = settings.sentinel and event.recovery is not None and any(
                fault.before <= event.before + event.recovery and event.before <= fault.after
                + 10.0 for fault in broker_faults)
            assert event.recovery is not None and event.recovery <= bound + 10.0 * (
                event.kind == "redis_kill" or overlaps) + stall_allowance(
                    event, report.events, NODE_QUEUES), f"{log.describe(event)} {seed}"
    memory = report.memory
    assert memory.stream_length == 0 and memory.running == 0, memory.line()
    assert memory.dead_consumers == [], memory.dead_consumers
    assert memory.leftover_keys == [], memory.leftover_keys[:20]
    assert memory.growth < max(2 * 1024 * 1024, memory.before // 2), memory.line()
