"""A node on a Sentinel deployment rides out a failover and a kill -9 of the new master.

Real processes: a master, two replicas, three sentinels, a `supervisor run
--workers 2` node with a redis+sentinel:// URL, and a ledger server of the
test's own that counts every execution. 4,000 jobs: half by `delay()` at a
steady rate, half by `enqueue_many` in batches. Mid-stream a `SENTINEL
FAILOVER`, later a SIGKILL of the new master and its restart.

Checked: no job lost, duplicates only within what was in flight at the two
faults, every record `succeeded` on the final master, stream / pending list
/ running hash empty, no child died, no producer call failed (each stall
stayed within the producer's retry window, ENQUEUE_RETRY_SECONDS), and no process of the node ever
had a socket to redis-py's default port 6379 (sampled all along).
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import pytest
from ha_checks import Feed, SocketWatch, final_counts
from ha_servers import SentinelSet, wait_for
from ha_tasks import LEDGER_RUNS, work
from node_process import Node
from redis_server import RedisServer

from supervisor.api.producer import Producer
from supervisor.broker import keys
from supervisor.config import load_config

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
JOBS = 4000
WORKERS = 2
PREFETCH = 16


def _records(client, ids: list[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for job_id, raw in zip(chunk, client.mget([keys.job("default", i) for i in chunk]),
                               strict=True):
            if raw:
                states[job_id] = json.loads(raw).get("state", "?")
    return states


def _replicas_online(deployment: SentinelSet, master: int) -> bool:
    info = deployment.client(master).info("replication")
    online = [value for name, value in info.items() if name.startswith("slave")
              and isinstance(value, dict) and value.get("state") == "online"]
    # One is enough: the old master rejoins as a replica only when a sentinel
    # next looks at it (up to 10 s), and is not a candidate before.
    return len(online) >= 1


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["async", "wait-1"])
def test_sentinel_failover_and_master_kill(sentinel_set: SentinelSet, tmp_path: Path,
                                           wait_replicas: int) -> None:
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    env = {"HA_LEDGER_URL": ledger.url, "SUPERVISOR_PREFETCH": str(PREFETCH)}
    if wait_replicas:
        env["SUPERVISOR_WAIT_REPLICAS"] = str(wait_replicas)
    node = Node("ha-sentinel", workers=WORKERS, redis_url=sentinel_set.url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="ha_tasks", cwd=HERE, env=env)
    settings = {"redis_url": sentinel_set.url, "result_ttl": 3600}
    if wait_replicas:
        settings["wait_replicas"] = wait_replicas
    producer = Producer(load_config(settings))
    for server in sentinel_set.servers:
        # A full resync starts at once (not after the default 5 s wait for
        # more replicas), so the replicas follow a new master within a second.
        sentinel_set.client(server.port).config_set("repl-diskless-sync-delay", 0)
    try:
        node.start()
        node.wait_ready(60)
        steady = Feed(lambda i: producer.submit(work, (1,), {}).id, JOBS // 2, every=0.006)

        def batch(i: int) -> str:
            results = producer.submit_many([work.s(1) for _ in range(100)])
            batch_ids.extend(result.id for result in results)
            return results[0].id

        batch_ids: list[str] = []
        batches = Feed(batch, JOBS // 2 // 100, every=0.6)
        with SocketWatch(lambda: [node.pid, *(c.pid for c in node.children())]) as sockets:
            steady.start()
            batches.start()
            wait_for(lambda: len(steady.ids) > JOBS // 8, 60, "a quarter of the feed")
            first = sentinel_set.master_port()
            marks = [len(steady.ids)]
            second = sentinel_set.failover()
            marks.append(len(steady.ids))
            wait_for(lambda: len(steady.ids) > JOBS // 4, 60, "half of the feed")
            killed = sentinel_set.server(second)
            # "Later": once a replica has synced with the new master; a master
            # killed before any did takes what only it had with it (README).
            wait_for(lambda: _replicas_online(sentinel_set, second), 60, "replicas synced")
            marks.append(len(steady.ids))
            third = sentinel_set.kill_master()
            marks.append(len(steady.ids))
            restart = threading.Timer(2.0, killed.start)  # back as a replica, later
            restart.start()
            steady.join(300)
            batches.join(300)
            restart.join()
            ids = steady.ids + batch_ids
            final = sentinel_set.client(sentinel_set.master_port())

            def settled() -> bool:
                states = _records(final, ids)
                return sum(1 for s in states.values() if s == "succeeded") == len(ids)

            with contextlib.suppress(RuntimeError):  # counted below, with what is missing
                wait_for(settled, 120, "every job succeeded")
        runs = ledger_client(ledger).hgetall(LEDGER_RUNS)
        counts = final_counts(ids, runs, _records(final, ids))
        stream = keys.stream("default")
        pending = final.xpending(stream, keys.GROUP)["pending"]
        summary = (f"{counts}; masters {first} -> {second} -> {third} (final "
                   f"{sentinel_set.master_port()}); longest delay() stall "
                   f"{steady.longest_stall():.2f}s, enqueue_many stall "
                   f"{batches.longest_stall():.2f}s; socket samples {sockets.samples}")
        lost_at = sorted(steady.ids.index(i) for i in counts.lost if i in steady.ids)
        print(summary, "marks", marks, "lost delay() positions", lost_at[:5], lost_at[-5:],
              len(lost_at), "runs of lost", sum(int(runs.get(i, 0)) for i in counts.lost))
        assert not steady.errors and not batches.errors, (steady.errors, batches.errors)
        assert counts.jobs == JOBS
        assert not counts.lost, f"{len(counts.lost)} lost: {summary}"
        # Duplicates come only from entries in flight at the two faults:
        # each worker holds at most PREFETCH fetched entries.
        assert counts.duplicates <= 2 * WORKERS * PREFETCH, summary
        assert final.xlen(stream) == 0 and pending == 0, summary
        assert final.hlen(keys.running("default")) == 0, summary
        log = node.log_path.read_text(errors="replace")
        assert " died" not in log, node.last_error()
        assert 6379 not in sockets.ports, "a worker talked to the default localhost:6379"
        # --wait-replicas sent WAIT after the writes (to the final master since it was
        # promoted: a replica is sent none), and without it none was sent.
        waits = final.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
        assert (waits > 0) == bool(wait_replicas), waits
    finally:
        node.terminate(60)
        node.reap_group()
        ledger.stop()


def ledger_client(server: RedisServer):
    import redis

    return redis.Redis.from_url(server.url, decode_responses=True)
