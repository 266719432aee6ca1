"""A producer made while a failover is under way writes nothing to the old master.

The window: the sentinels began a failover (`+try-failover`) before the process
subscribed to them, so it never saw that event, and the old master still
answers ROLE master until the sentinels demote it; what is written there is
erased by its resync. (A chaos run on Sentinel met it: children booted in that
window took jobs from the old master, and the new master handed them out again.)

Here the window is held open with real servers: both replicas are stopped
(SIGSTOP) as `SENTINEL FAILOVER` begins, so the replica the leader chose takes
its promotion only once continued. A producer made in that window must see the
leader's `failover_in_progress` flag on its watchers' first look, wait for the
promoted replica, and its job must be on the final master once the old one has
been demoted and has resynced.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from ha_servers import SentinelSet, wait_for

from supervisor.api import aproducer, producer
from supervisor.broker import keys
from supervisor.config import load_config
from tasks.examples import add

pytestmark = [pytest.mark.ha, pytest.mark.timeout(300)]


def _failover_of(client: Any) -> Any:
    """The Failover a producer's Sentinel client follows (sentinel.master_client)."""
    return client.connection_pool.sentinel_manager.discover_master.failover


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_producer_made_mid_failover_waits_for_the_promoted_replica(
        sentinel_set: SentinelSet, flavour: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = sentinel_set
    monkeypatch.setattr(producer, "ENQUEUE_RETRY_SECONDS", 60.0)
    monkeypatch.setattr(aproducer, "ENQUEUE_RETRY_SECONDS", 60.0)
    with deployment.replicas_stopped() as old:
        deployment.leader().execute_command("SENTINEL", "FAILOVER", deployment.master_name)
        wait_for(deployment.failing_over, 10, "the leader failing the master over")
        config = load_config({"redis_url": deployment.url}, env={})
        done: dict[str, Any] = {}
        if flavour == "sync":
            made: Any = producer.Producer(config)

            def submit() -> None:
                done["id"] = made.submit(add, (1, 2), {}, job_id="fresh").id
        else:
            made = aproducer.AsyncProducer(config)

            def submit() -> None:
                async def run() -> str:
                    try:
                        return (await made.submit(add, (1, 2), {}, job_id="fresh")).id
                    finally:
                        await made.client.aclose()
                done["id"] = asyncio.run(run())
        failover = _failover_of(made.client)
        sender = threading.Thread(target=submit, daemon=True)
        sender.start()
        # Its watchers had their first look; from then on the enqueue is either written
        # (to the old master: the fault this test is about) or paused.
        wait_for(failover.looked.is_set, 10, "the producer's first look at the sentinels")
        wait_for(lambda: "id" in done or failover.under_way(), 10,
                 "the enqueue written or paused")
        written_early = "id" in done
    sender.join(90)
    assert done.get("id") == "fresh"
    assert not written_early, "the enqueue went through before the promotion (old master)"
    new = wait_for(lambda: (port := deployment.master_port()) != old
                   and deployment.client(port).execute_command("ROLE")[0] == "master"
                   and port, 30, "the promoted replica")
    # The old master is demoted and resyncs from the new one: whatever it alone held is
    # gone then, so the job must be on the new master.
    demoted = deployment.client(old)
    wait_for(lambda: demoted.execute_command("ROLE")[0] == "slave"
             and demoted.info("replication").get("master_link_status") == "up", 60,
             "the old master demoted and in sync")
    final = deployment.client(new)
    assert final.exists(keys.job("default", "fresh")) == 1
    assert final.xlen(keys.stream("default")) == 1
    wait_for(lambda: demoted.exists(keys.job("default", "fresh")), 10,
             "the job replicated to the demoted master")
