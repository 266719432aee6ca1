"""OpenTelemetry (with the SDK's in-memory exporter) and error reporting, through drain().

drain() runs the worker's own runner, so these are the spans and reports a
worker makes; the producer is this test, as a web request would be.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from traced_tasks import charge, doomed, first_step, flaky_first_step, second_step

from supervisor import chord, configure
from supervisor.api.otel import Tracing
from supervisor.api.reporting import ReportErrors


@pytest.fixture
def spans(supervisor_testing: Any) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(middleware=[Tracing(tracer_provider=provider)])
    yield exporter
    provider.shutdown()


def test_one_trace_holds_the_producer_span_three_attempts_and_a_chains_second_step(
    spans: InMemorySpanExporter, supervisor_drain: Any,
) -> None:
    """The issue's test: a chain whose first step fails twice, then succeeds."""
    tracer = TracerProvider().get_tracer("test")  # not exported: only its ids matter
    with tracer.start_as_current_span("POST /orders") as request:
        chained = (flaky_first_step.s(1) | second_step.s()).delay()
    supervisor_drain()
    assert chained.get(timeout=1) == "shipped 2"

    finished = spans.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    assert {span.context.trace_id for span in finished} == {trace_id}, "one trace"
    [enqueue] = [s for s in finished if s.name == "enqueue traced_tasks.flaky_first_step"]
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes["supervisor.task"] == "traced_tasks.flaky_first_step"

    runs = sorted((s for s in finished if s.name == "run traced_tasks.flaky_first_step"),
                  key=lambda s: s.attributes["supervisor.attempt"])
    assert [(s.attributes["supervisor.attempt"], s.attributes["supervisor.outcome"])
            for s in runs] == [(1, "retry"), (2, "retry"), (3, "succeeded")]
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        assert run.parent.span_id == enqueue.context.span_id
        assert [link.context.span_id for link in run.links] == [enqueue.context.span_id]
        assert run.attributes["supervisor.task"] == "traced_tasks.flaky_first_step"
        assert run.attributes["supervisor.queue"] == "default"
    assert [s.status.status_code for s in runs] == [StatusCode.ERROR, StatusCode.ERROR,
                                                     StatusCode.UNSET]
    assert len({run.attributes["supervisor.job_id"] for run in runs}) == 1, "one job"

    [second] = [s for s in finished if s.name == "run traced_tasks.second_step"]
    assert second.kind is SpanKind.CONSUMER
    assert second.attributes["supervisor.task"] == "traced_tasks.second_step"
    assert second.attributes["supervisor.queue"] == "shipping"
    assert second.attributes["supervisor.attempt"] == 1
    assert second.attributes["supervisor.outcome"] == "succeeded"
    assert second.attributes["supervisor.job_id"] == chained.id  # the chain's last step
    # The next step carries the chain's headers: a child of the producer's span.
    assert second.parent.span_id == enqueue.context.span_id


def test_one_trace_holds_the_request_three_attempts_and_the_next_step(
    spans: InMemorySpanExporter, supervisor_drain: Any,
) -> None:
    tracer = TracerProvider().get_tracer("test")  # not exported: only its ids matter
    with tracer.start_as_current_span("POST /orders") as request:
        result = charge.delay(7)
    supervisor_drain()
    assert result.get(timeout=1) == 7

    finished = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    trace_id = request.get_span_context().trace_id
    assert {span.context.trace_id for span in finished} == {trace_id}, "one trace"

    [enqueue] = by_name["enqueue traced_tasks.charge"]
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent.span_id == request.get_span_context().span_id
    runs = sorted(by_name["run traced_tasks.charge"],
                  key=lambda s: s.attributes["supervisor.attempt"])
    assert [(s.attributes["supervisor.attempt"], s.attributes["supervisor.outcome"])
            for s in runs] == [(1, "retry"), (2, "retry"), (3, "succeeded")]
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        assert run.parent.span_id == enqueue.context.span_id
        assert [link.context.span_id for link in run.links] == [enqueue.context.span_id]
        assert run.attributes["supervisor.job_id"] == result.id
        assert run.attributes["supervisor.queue"] == "default"
    assert runs[0].status.status_code is StatusCode.ERROR
    assert runs[0].events[0].name == "exception"
    assert runs[2].status.status_code is StatusCode.UNSET

    [next_enqueue] = by_name["enqueue traced_tasks.ship"]  # enqueued inside attempt 3
    assert next_enqueue.parent.span_id == runs[2].context.span_id
    [next_run] = by_name["run traced_tasks.ship"]
    assert next_run.parent.span_id == next_enqueue.context.span_id
    assert next_run.attributes["supervisor.outcome"] == "succeeded"


def test_a_workflows_steps_are_in_the_producers_trace(
    spans: InMemorySpanExporter, supervisor_drain: Any,
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /orders") as request:
        chained = (first_step.s(1) | second_step.s()).delay()
        chorded = chord([first_step.s(1), first_step.s(2)], second_step.s()).delay()
    supervisor_drain()
    assert chained.get(timeout=1) == "shipped 2"
    assert chorded.get(timeout=1) == "shipped [2, 3]"
    finished = spans.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    assert {span.context.trace_id for span in finished} == {trace_id}, "one trace"
    enqueues = [s for s in finished if s.name == "enqueue traced_tasks.first_step"]
    seconds = [s for s in finished if s.name == "run traced_tasks.second_step"]
    assert len(seconds) == 2  # the chain's second step (another queue) and the callback
    assert {s.parent.span_id for s in seconds} <= {e.context.span_id for e in enqueues}


def test_the_traceparent_travels_in_the_headers(spans: InMemorySpanExporter,
                                                supervisor_drain: Any) -> None:
    result = charge.delay(1)
    headers = result.info()["headers"]  # what `supervisor job` shows
    assert headers["traceparent"].startswith("00-")
    [enqueue] = spans.get_finished_spans()
    assert f"{enqueue.context.trace_id:032x}" in headers["traceparent"]


def test_failed_attempts_go_to_the_reporter_with_their_job(supervisor_testing: Any) -> None:
    every: list[tuple[BaseException, dict[str, Any]]] = []
    final: list[tuple[BaseException, dict[str, Any]]] = []
    configure(middleware=[ReportErrors(lambda error, job: every.append((error, job))),
                          ReportErrors(lambda error, job: final.append((error, job)),
                                       retries=False, drop_arguments=True)])
    result = doomed.apply_async((5,), headers={"tenant": "acme"})
    supervisor_testing.drain()
    assert [(type(e).__name__, job["attempt"], job["outcome"]) for e, job in every] == [
        ("LookupError", 1, "retry"), ("LookupError", 2, "failed")]
    error, job = every[1]
    assert str(error) == "no order 5" and error.__traceback__ is not None
    assert (job["job_id"], job["task"], job["queue"], job["args"], job["headers"]) == (
        result.id, "traced_tasks.doomed", "default", [5], {"tenant": "acme"})
    assert [(job["attempt"], "args" in job) for _, job in final] == [(2, False)]


def test_without_the_extra_everything_else_works_and_tracing_says_what_to_install() -> None:
    """The `otel` extra absent (imports of opentelemetry refused): our modules load and
    hooks are built; only supervisor.api.otel needs it, and says so. (redis-py itself
    looks for opentelemetry when present, so absence is simulated, not observed.)"""
    code = """
import sys
class NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'opentelemetry':
            raise ImportError('no opentelemetry here')
sys.meta_path.insert(0, NoOtel())
import supervisor, supervisor.testing, supervisor.worker.child, supervisor.api.producer
import supervisor.api.reporting, supervisor.cli.run, supervisor.master.arbiter
from supervisor.core.middleware import Hooks
from supervisor.api.reporting import ReportErrors
Hooks([ReportErrors(print)])
try:
    import supervisor.api.otel
except ImportError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True)
    assert "pip install 'redis-supervisor[otel]'" in done.stdout
