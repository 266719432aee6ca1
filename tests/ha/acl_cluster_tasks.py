"""Tasks of the cluster ACL test: the workflow tasks (one queue per shard) plus a job
retried once, one dead-lettered and flow-controlled ones, so every script of the loop
runs as the user."""

from __future__ import annotations

from tenacity import stop_after_attempt, wait_fixed
from wf_cluster_tasks import add_alpha, add_beta, total_alpha, total_beta

from supervisor import Reject, TaskContext, task

__all__ = ["add_alpha", "add_beta", "capped_beta", "flaky_delta", "once_alpha", "paced_alpha",
           "refuse_delta", "total_alpha", "total_beta"]


@task(queue="delta", bind=True, stop=stop_after_attempt(3), wait=wait_fixed(0.2))
def flaky_delta(self: TaskContext) -> int:
    """Fails its first attempt: its retry goes through the delayed set."""
    if self.request.attempt < 2:
        raise RuntimeError("first attempt fails on purpose")
    return self.request.attempt


@task(queue="delta")
def refuse_delta() -> None:
    raise Reject("refused on purpose")


@task(queue="alpha", rate_limit="100/s")
def paced_alpha(x: int) -> int:
    return x


@task(queue="beta", concurrency_limit=2)
def capped_beta(x: int) -> int:
    return x


@task(queue="alpha", unique=True)
def once_alpha(x: int) -> int:
    return x
