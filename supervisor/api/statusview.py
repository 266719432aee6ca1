"""The `supervisor status --json` document: shared by the CLI and the dashboard."""

from __future__ import annotations

from typing import Any

from supervisor.broker.nodes import cluster_status
from supervisor.broker.refusals import refusing_writes


def status_document(client: Any, url: str, now: float | None = None) -> dict[str, Any]:
    """The nodes' and queues' state, and whether Redis refuses writes now (then the
    nodes' snapshots are as old as the refusal)."""
    return {**cluster_status(client, now),
            "redis": {"refusing_writes": refusing_writes(client, url)}}
