"""The async producer (adelay, aenqueue_many, aget) on Sentinel and Cluster deployments.

Real processes: a master, two replicas and three sentinels (or a 3-master
cluster), a `supervisor run` node reading the queues, a ledger server that
counts every execution. The producer is `await task.adelay()` and `await
aenqueue_many()` on an event loop of the test's own, with `configure()`d
redis+sentinel:// / redis+cluster:// URLs.

- Sentinel: 1,000 jobs (half by adelay at a steady rate, half by
  aenqueue_many in batches of 50) with a `SENTINEL FAILOVER` mid-stream:
  no call failed, no job lost, every record `succeeded` on the new master.
- Cluster: jobs of three queues on three different shards, enqueued by
  adelay and aenqueue_many; `aget()` returns every result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ha_checks import final_counts
from ha_servers import ClusterSet, SentinelSet, wait_for
from ha_tasks import LEDGER_RUNS, QUEUES, WORK, work
from node_process import Node
from redis_server import RedisServer

import supervisor
from supervisor.broker import keys

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
JOBS = 1000
BATCH = 50
WORKERS = 2
PREFETCH = 16


@contextlib.contextmanager
def _configured(url: str) -> Iterator[None]:
    """The process's producers (sync and async) on `url` meanwhile."""
    import supervisor.api.producer as producer_module

    producer_module._overrides.clear()
    supervisor.configure(redis_url=url, result_ttl=3600)
    try:
        yield
    finally:
        producer_module._overrides.clear()
        producer_module._producer = None


class AsyncFeed:
    """adelay() every `every` seconds and aenqueue_many() batches, on a loop in a thread."""

    def __init__(self, jobs: int, every: float) -> None:
        self.jobs = jobs
        self.every = every
        self.ids: list[str] = []
        self.stalls: list[float] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _timed(self, call: Any) -> Any:
        started = time.monotonic()
        try:
            return await call
        finally:
            self.stalls.append(time.monotonic() - started)

    async def _steady(self, count: int) -> None:
        next_at = time.monotonic()
        for _ in range(count):
            result = await self._timed(work.adelay(1))
            self.ids.append(result.id)
            next_at += self.every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _batches(self, count: int) -> None:
        for _ in range(count):
            results = await self._timed(supervisor.aenqueue_many(work.s(1)
                                                                 for _ in range(BATCH)))
            self.ids.extend(result.id for result in results)
            await asyncio.sleep(self.every * BATCH)

    async def _main(self) -> None:
        half = self.jobs // 2
        try:
            await asyncio.gather(self._steady(half), self._batches(half // BATCH))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.errors.append(exc)


def _states(client: Any, jobs: list[tuple[str, str]]) -> dict[str, str]:
    states: dict[str, str] = {}
    for start in range(0, len(jobs), 500):
        chunk = jobs[start:start + 500]
        pipe = client.pipeline(transaction=False)
        for queue, job_id in chunk:
            pipe.get(keys.job(queue, job_id))
        for (_, job_id), raw in zip(chunk, pipe.execute(), strict=True):
            if raw:
                states[job_id] = json.loads(raw).get("state", "?")
    return states


def _ledger_runs(server: RedisServer) -> dict[str, str]:
    import redis

    return dict(redis.Redis.from_url(server.url, decode_responses=True).hgetall(LEDGER_RUNS))


def test_the_async_producer_rides_out_a_sentinel_failover(
        sentinel_set: SentinelSet, tmp_path: Path) -> None:
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    env = {"HA_LEDGER_URL": ledger.url, "SUPERVISOR_PREFETCH": str(PREFETCH)}
    node = Node("ha-async", workers=WORKERS, redis_url=sentinel_set.url, log_dir=tmp_path,
                heartbeat_timeout=5, result_ttl=3600, tasks="ha_tasks", cwd=HERE, env=env)
    for server in sentinel_set.servers:
        sentinel_set.client(server.port).config_set("repl-diskless-sync-delay", 0)
    try:
        node.start()
        node.wait_ready(60)
        with _configured(sentinel_set.url):
            feed = AsyncFeed(JOBS, every=0.01)
            feed.thread.start()
            wait_for(lambda: len(feed.ids) > JOBS // 4, 60, "a quarter of the feed")
            first = sentinel_set.master_port()
            second = sentinel_set.failover()
            at_failover = len(feed.ids)
            feed.thread.join(300)
            assert not feed.thread.is_alive(), "the async producer did not finish"
        final = sentinel_set.client(sentinel_set.master_port())
        jobs = [("default", job_id) for job_id in feed.ids]

        def settled() -> bool:
            states = _states(final, jobs)
            return sum(1 for s in states.values() if s == "succeeded") == len(jobs)

        with contextlib.suppress(RuntimeError):  # counted below, with what is missing
            wait_for(settled, 120, "every job succeeded")
        counts = final_counts(feed.ids, _ledger_runs(ledger), _states(final, jobs))
        summary = (f"{counts}; masters {first} -> {second}, {at_failover} enqueued before; "
                   f"longest async stall {max(feed.stalls, default=0):.2f}s")
        print(summary)
        assert not feed.errors, feed.errors
        assert second != first
        assert counts.jobs == JOBS
        assert not counts.lost, f"{len(counts.lost)} lost: {summary}"
        assert counts.duplicates <= WORKERS * PREFETCH, summary
        assert final.xlen(keys.stream("default")) == 0, summary
    finally:
        node.terminate(60)
        node.reap_group()
        ledger.stop()


def test_the_async_producer_and_aget_on_a_cluster(cluster_set: ClusterSet,
                                                  tmp_path: Path) -> None:
    from redis.crc import key_slot

    owners = {queue: cluster_set.slot_owner(key_slot(keys.stream(queue).encode()))
              for queue in QUEUES}
    assert len(set(owners.values())) == 3, f"queues not on three shards: {owners}"
    ledger = RedisServer(tmp_path / "ledger")
    ledger.start()
    node = Node("ha-async-cluster", workers=WORKERS, redis_url=cluster_set.url,
                log_dir=tmp_path, heartbeat_timeout=5, result_ttl=3600, tasks="ha_tasks",
                cwd=HERE, env={"HA_LEDGER_URL": ledger.url}, queues=",".join(QUEUES))

    async def main() -> tuple[list[int], list[int], list[str]]:
        single = [await WORK[queue].adelay(index + 1) for index, queue in enumerate(QUEUES)]
        many = await supervisor.aenqueue_many(WORK[QUEUES[i % 3]].s(10 + i) for i in range(60))
        got = await asyncio.gather(*(r.aget(timeout=60) for r in single))
        got_many = await asyncio.gather(*(r.aget(timeout=60) for r in many))
        return list(got), list(got_many), [str(r.queue) for r in many]

    try:
        node.start()
        node.wait_ready(60)
        with _configured(cluster_set.url):
            single, many, queues = asyncio.run(main())
        assert single == [1, 2, 3]
        assert many == [10 + i for i in range(60)]
        assert queues == [QUEUES[i % 3] for i in range(60)]
        for port in set(owners.values()):  # every shard took its queue's jobs
            shard = cluster_set.client(port)
            assert shard.dbsize() > 0, f"nothing written to the master on {port}"
        log = node.log_path.read_text(errors="replace")
        for error in ("MOVED", "CROSSSLOT", "non local key", " died"):
            assert error not in log, node.last_error()
    finally:
        node.terminate(60)
        node.reap_group()
        ledger.stop()
