"""Tasks for the tracing and error-reporting tests (tests/testing_mode)."""

from __future__ import annotations

from tenacity import wait_fixed

from supervisor import TaskContext, task


@task(bind=True, max_retries=3, wait=wait_fixed(60))
def charge(self: TaskContext, order_id: int) -> int:
    if self.request.attempt < 3:
        raise ConnectionError(f"payment API down (attempt {self.request.attempt})")
    ship.delay(order_id)  # the next step, enqueued by the task
    return order_id


@task
def ship(order_id: int) -> str:
    return f"shipped {order_id}"


@task(max_retries=1)
def doomed(order_id: int) -> None:
    raise LookupError(f"no order {order_id}")


@task
def first_step(order_id: int) -> int:
    return order_id + 1


@task(queue="shipping")
def second_step(order_id: int) -> str:
    return f"shipped {order_id}"


@task(bind=True, max_retries=3, wait=wait_fixed(60))
def flaky_first_step(self: TaskContext, order_id: int) -> int:
    """A chain's first step that fails twice, then succeeds (drain() skips the waits)."""
    if self.request.attempt < 3:
        raise ConnectionError(f"stock API down (attempt {self.request.attempt})")
    return order_id + 1
