"""Tasks of the workflow test on a Redis Cluster: one queue per shard (ha_tasks.QUEUES)."""

from __future__ import annotations

from supervisor import task


@task(queue="alpha")
def add_alpha(x: int, y: int) -> int:
    return x + y


@task(queue="beta")
def add_beta(x: int, y: int) -> int:
    return x + y


@task(queue="alpha")
def total_alpha(values: list[int]) -> int:
    return sum(values)


@task(queue="beta")
def total_beta(values: list[int]) -> int:
    return sum(values)
