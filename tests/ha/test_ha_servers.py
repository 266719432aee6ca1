"""The deployments themselves behave (a failover moves the master, a slot moves)."""

from __future__ import annotations

import signal
import threading

import pytest
from ha_servers import ClusterSet, SentinelSet, wait_for

pytestmark = pytest.mark.ha


def test_sentinel_failover_and_kill(sentinel_set: SentinelSet) -> None:
    first = sentinel_set.master_port()
    second = sentinel_set.failover()
    assert second != first
    third = sentinel_set.kill_master()
    assert third != second


def test_an_aborted_failover_is_asked_for_again(sentinel_set: SentinelSet) -> None:
    # Both replicas stopped: the one chosen cannot take its promotion, and the sentinels
    # give the failover up after their failover timeout (as CI saw with a busy replica).
    old = sentinel_set.master_port()
    held = [server for server in sentinel_set.servers if server.port != old]
    leader = sentinel_set.client(sentinel_set.sentinels[0].port)
    for server in held:
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
    done: dict[str, int] = {}
    mover = threading.Thread(target=lambda: done.setdefault("new", sentinel_set.failover()),
                             daemon=True)
    try:
        mover.start()
        flags = lambda: str(leader.sentinel_master(sentinel_set.master_name).get("flags"))  # noqa: E731
        wait_for(lambda: "failover_in_progress" in flags(), 10, "the first attempt")
        wait_for(lambda: "failover_in_progress" not in flags(), 30, "the first attempt aborted")
        assert sentinel_set.master_port() == old and "new" not in done
    finally:
        for server in held:
            if server.process is not None:
                server.process.send_signal(signal.SIGCONT)
    mover.join(120)
    assert done.get("new") not in (None, old)


def test_cluster_slot_migration_and_master_kill(cluster_set: ClusterSet) -> None:
    slot = 1234
    owner = cluster_set.slot_owner(slot)
    target = next(port for port in cluster_set.master_ports() if port != owner)
    cluster_set.migrate_slot(slot, target)
    assert cluster_set.slot_owner(slot) == target
    promoted = cluster_set.kill_master(target)
    assert promoted != target and cluster_set.slot_owner(slot) == promoted
