"""The deployments themselves behave (a failover moves the master, a slot moves)."""

from __future__ import annotations

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
    done: dict[str, int] = {}
    mover = threading.Thread(target=lambda: done.setdefault("new", sentinel_set.failover()),
                             daemon=True)
    with sentinel_set.replicas_stopped() as old:
        mover.start()
        wait_for(sentinel_set.failing_over, 10, "the first attempt")
        wait_for(lambda: not sentinel_set.failing_over(), 30, "the first attempt aborted")
        assert sentinel_set.master_port() == old and "new" not in done
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
