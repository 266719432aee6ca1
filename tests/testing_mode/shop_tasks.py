"""A user's task module, as the README's "Testing your tasks" has it (tests/testing_mode)."""

from __future__ import annotations

import os
from typing import Any

from tenacity import wait_fixed

from supervisor import TaskContext, task

calls: list[tuple[str, int, int]] = []  # (task, attempt, pid): what ran, and where


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def echo(value: Any) -> Any:
    return value


@task(bind=True, max_retries=3, wait=wait_fixed(3600))  # an hour between tries
def flaky(self: TaskContext, fail_times: int) -> str:
    calls.append(("flaky", self.request.attempt, os.getpid()))
    if self.request.attempt <= fail_times:
        raise ConnectionError(f"attempt {self.request.attempt}: the shop's API is down")
    return f"ok after {self.request.attempt} attempts"


@task(max_retries=1)
def broken(order_id: int) -> None:
    raise ValueError(f"order {order_id} has no lines")


@task
def place_order(order_id: int, amount: int) -> int:
    """Charges, then sends the receipt as a job of its own (code under test enqueues)."""
    send_receipt.delay(order_id, amount)
    return order_id


@task(bind=True)
def send_receipt(self: TaskContext, order_id: int, amount: int) -> str:
    calls.append(("send_receipt", self.request.attempt, os.getpid()))
    return f"receipt {order_id}: {amount}"


@task(unique=True)
def sync_stock(sku: str) -> str:
    """One sync per SKU at a time: two web servers asking at once make one job."""
    return f"synced {sku}"


@task(rate_limit="2/h", concurrency_limit=1)
def call_carrier(parcel: int) -> int:
    """Limited far below what a test enqueues: drain() runs them all the same."""
    return parcel
