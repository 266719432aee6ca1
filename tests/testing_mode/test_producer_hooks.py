"""Producer hooks and headers at enqueue: what is sent, what is refused, nothing lost."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from shop_tasks import add, echo, place_order

from supervisor import EnqueueInfo, Middleware, configure, enqueue_many
from supervisor.api.producer import current_producer
from supervisor.api.propagate import PropagateHeaders
from supervisor.api.result import AsyncResult
from supervisor.errors import PayloadTooLarge


class Tag(Middleware):
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value

    def before_enqueue(self, job: EnqueueInfo) -> None:
        job.headers[self.name] = self.value


class Boom(Middleware):
    def before_enqueue(self, job: EnqueueInfo) -> None:
        raise RuntimeError("producer hook boom")


def test_hooks_add_headers_in_order_after_the_callers(supervisor_drain: Any) -> None:
    configure(middleware=[Tag("a", "1"), Tag("b", "2"), Tag("a", "3")])
    result = add.apply_async((1, 2), headers={"a": "0", "c": "caller"})
    assert result.info()["headers"] == {"a": "3", "b": "2", "c": "caller"}
    [many] = enqueue_many([echo.s(1)])
    assert many.info()["headers"] == {"a": "3", "b": "2"}
    supervisor_drain()
    assert result.info()["headers"] == {"a": "3", "b": "2", "c": "caller"}, "kept at the end"


def test_a_raising_or_misbehaving_hook_never_loses_the_job(
    supervisor_drain: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    configure(middleware=[Boom(), Tag("n", 7)])  # 7: not a string
    with caplog.at_level(logging.ERROR, "supervisor.hooks"):
        result = add.apply_async((2, 2), headers={"kept": "yes"})
    supervisor_drain()
    assert result.get(timeout=1) == 4
    assert result.info()["headers"] == {"kept": "yes"}, "sent with the caller's headers only"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith(f"hook {__name__}.Boom.before_enqueue raised; ignored")
    assert "header 'n' is int, not str" in messages[1]


def test_headers_of_the_caller_are_checked_and_count_in_the_payload_limit(
    supervisor_testing: Any,
) -> None:
    with pytest.raises(ValueError, match="header 'n' is int, not str"):
        add.apply_async((1, 2), headers={"n": 1})  # type: ignore[dict-item]
    configure(redis_url=supervisor_testing.redis_url, max_payload_bytes=2000)
    add.apply_async((1, 2), headers={"small": "x" * 100})
    with pytest.raises(PayloadTooLarge, match="over the limit of 2000"):
        add.apply_async((1, 2), headers={"big": "x" * 2000})


def test_headers_a_hook_adds_count_in_the_payload_limit_and_the_error_says_so(
    supervisor_testing: Any,
) -> None:
    configure(redis_url=supervisor_testing.redis_url, max_payload_bytes=2000,
              middleware=[Tag("trace", "x" * 2000)])
    with pytest.raises(PayloadTooLarge,
                       match=r"bytes \(20\d\d bytes of it headers, the caller's and those "
                             r"added by before_enqueue hooks\), over the limit of 2000"):
        add.delay(1, 2)  # the arguments alone are far below it


def test_a_requeued_dead_letter_keeps_its_headers(supervisor_testing: Any) -> None:
    result = add.apply_async((1,), headers={"tenant": "acme"})  # arguments do not fit
    supervisor_testing.drain()
    [letter] = supervisor_testing.dead_letters()
    assert current_producer().requeue(letter["job"]) == result.id
    assert result.info()["headers"] == {"tenant": "acme"}


def test_the_next_step_inherits_the_running_jobs_headers(supervisor_testing: Any) -> None:
    configure(middleware=[PropagateHeaders("tenant", "request-id")])
    order = place_order.apply_async((42, 990), headers={"tenant": "acme", "request-id": "r1",
                                                        "private": "not passed on"})
    drained = supervisor_testing.drain()
    assert order.get(timeout=1) == 42
    receipt_id = next(job_id for job_id in drained.job_ids if job_id != order.id)
    receipt: AsyncResult[Any] = AsyncResult(receipt_id)
    assert receipt.info()["headers"] == {"tenant": "acme", "request-id": "r1"}
    assert receipt.get(timeout=1) == "receipt 42: 990"
