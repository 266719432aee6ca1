"""A chord under faults: children SIGKILLed, a whole node killed and restarted."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import redis
import workflow_tasks as wt
from helpers import wait_until
from master_harness import Masters

import supervisor.api.producer as producer_module
from supervisor import chain, chord, group
from supervisor.broker import keys
from supervisor.broker.inspect import queue_stats

HERE = Path(__file__).resolve().parent
FLOCK = 1000  # members of the group run beside the chord
CHAINS = 50  # chains with step options run beside them too


def run_chord_under_faults(redis_url: str, tmp_path: Path, members: int) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    env = {"PYTHONPATH": f"{HERE}:{HERE.parent.parent}", "SUPERVISOR_REDIS_URL": redis_url}
    masters = Masters()
    options = ["--heartbeat-timeout", "2", "--queues", f"default,{wt.OTHER}"]
    try:
        nodes = [masters.run(tmp_path, env, workers=2, tasks="workflow_tasks",
                             options=[*options, "--node-name", name]) for name in ("n1", "n2")]
        for node in nodes:
            node.notify.wait_for("READY=1", timeout=30)
        producer_module.configure(redis_url=redis_url)
        result = chord((wt.slow_add.s(i, 1) for i in range(members)),
                       wt.noted_total.s("callback-runs")).delay()
        # Beside it, a group whose every member ends a branch of its workflow: each counted
        # once in its count of ends, though a member run again after a kill settles twice.
        flock = group(wt.slow_add.s(i, 2) for i in range(FLOCK)).delay()
        # And chains with this session's options on their steps: a priority, a countdown,
        # a crossing of queues, a chord inside a group's member chain (their trees in the
        # other queue, so the default queue's workflow counts stay those of the two above).
        chains = [(wt.add_other.s(i, 1) | wt.slow_add.s(1).set(priority=9, countdown=0.2)
                   | wt.add.s(1).set(priority=5)).delay() for i in range(CHAINS)]
        nested = group(chain(wt.add_other.s(1, 1), group(wt.slow_add.s(1), wt.slow_add.s(2)),
                             wt.total.s()), wt.add_other.s(5, 5)).delay()
        chord_key = keys.chord("default", result.parent.id)
        rng = random.Random(members)

        def left() -> int:
            return int(client.hget(chord_key, "left") or members)

        # Faults while a fifth or more of the members are still to come, so none hits
        # the callback itself (its one run is then counted exactly).
        wait_until(lambda: left() < members * 0.9, timeout=60, what="members settle")
        child_kills = 0
        for _ in range(3):
            pids = sorted(nodes[0].child_pids())
            if pids and left() > members * 0.4:
                os.kill(rng.choice(pids), signal.SIGKILL)
                child_kills += 1
            wait_until(lambda: len(nodes[0].child_pids()) == 2, timeout=30)
        assert child_kills >= 1, "no child was killed while members were left"
        killed_at = left()
        os.killpg(nodes[1].pid, signal.SIGKILL)  # the whole node, master and children
        nodes[1].proc.wait(10)
        assert killed_at > members * 0.2, "faults came too late to matter"
        restarted = masters.run(tmp_path, env, workers=2, tasks="workflow_tasks",
                                options=[*options, "--node-name", "n2"])
        restarted.notify.wait_for("READY=1", timeout=30)
        assert result.get(timeout=180) == sum(range(1, members + 1))
        runs = client.lrange("callback-runs", 0, -1)
        assert runs == [result.id], "the callback was enqueued and run once"
        assert client.hget(chord_key, "left") == "0"
        assert len([f for f in client.hkeys(chord_key) if f[1:].isdigit()]) == members
        assert flock.get(timeout=60) == [i + 2 for i in range(FLOCK)]
        assert [each.get(timeout=60) for each in chains] == [i + 3 for i in range(CHAINS)]
        assert nested.get(timeout=60) == [7, 10]

        def flows(queue: str = "default") -> tuple[int, int, int]:
            stats = queue_stats(client, queue)
            return (stats.workflows_running, stats.workflows_succeeded, stats.workflows_failed)

        wait_until(lambda: flows() == (0, 2, 0), timeout=10, what="both workflows succeeded")
        wait_until(lambda: flows(wt.OTHER) == (0, CHAINS + 1, 0), timeout=10,
                   what="the chains and the nested group succeeded (their ends forwarded)")
        ends = client.hgetall(keys.workflow_ends("default", flock.id))
        assert ends["left"] == "0" and "failed" not in ends
        assert len([name for name in ends if name.startswith("e")]) == FLOCK
    finally:
        masters.stop_all()


@pytest.mark.timeout(300)  # it waits up to 180 s for the callback: above the default 120
def test_chord_of_5000_under_faults_calls_back_exactly_once(redis_url: str,
                                                            tmp_path: Path) -> None:
    run_chord_under_faults(redis_url, tmp_path, 5000)
