"""The deployments themselves behave (a failover moves the master, a slot moves)."""

from __future__ import annotations

import pytest
from ha_servers import ClusterSet, SentinelSet

pytestmark = pytest.mark.ha


def test_sentinel_failover_and_kill(sentinel_set: SentinelSet) -> None:
    first = sentinel_set.master_port()
    second = sentinel_set.failover()
    assert second != first
    third = sentinel_set.kill_master()
    assert third != second


def test_cluster_slot_migration_and_master_kill(cluster_set: ClusterSet) -> None:
    slot = 1234
    owner = cluster_set.slot_owner(slot)
    target = next(port for port in cluster_set.master_ports() if port != owner)
    cluster_set.migrate_slot(slot, target)
    assert cluster_set.slot_owner(slot) == target
    promoted = cluster_set.kill_master(target)
    assert promoted != target and cluster_set.slot_owner(slot) == promoted
