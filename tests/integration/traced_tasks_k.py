"""Tasks for tracing at --concurrency K > 1: each step enqueues its next one.

In a worker started with TRACE_SPANS_TO_REDIS=1 the module registers the
Tracing middleware with an exporter that pushes every finished span to the
list `t:spans` of the test's private Redis, so the test can read the spans
the children made. Imported by the test itself (to enqueue), it registers
nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import redis

from supervisor import configure, task

SPANS = "t:spans"


def _export_to_redis() -> None:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from supervisor.api.otel import Tracing

    class RedisExporter(SpanExporter):
        def __init__(self) -> None:
            self.client = redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"])

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.client.rpush(SPANS, *(json.dumps({
                "name": span.name, "trace": span.context.trace_id,
                "span": span.context.span_id,
                "parent": span.parent.span_id if span.parent else None,
                "job_id": (span.attributes or {}).get("supervisor.job_id"),
                "pid": os.getpid()}) for span in spans))
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedisExporter()))
    configure(middleware=[Tracing(tracer_provider=provider)])


if os.environ.get("TRACE_SPANS_TO_REDIS") == "1":
    _export_to_redis()


@task
def step(n: int) -> str:
    time.sleep(0.05)  # long enough for the jobs of a child to overlap
    return follow.delay(n).id


@task
async def astep(n: int) -> str:
    await asyncio.sleep(0.05)
    return (await follow.adelay(n)).id


@task
def follow(n: int) -> Any:
    return n
