"""OpenTelemetry tracing of jobs: the `otel` extra (`pip install 'redis-supervisor[otel]'`).

    from supervisor import configure
    from supervisor.api.otel import Tracing

    configure(middleware=[Tracing()])          # or --middleware supervisor.api.otel:Tracing

- Producer: `enqueue <task>` (a PRODUCER span, child of whatever span is
  current, e.g. the web request) whose context is injected into the job's
  headers by the configured propagator (W3C `traceparent` by default).
- Worker: each attempt is a CONSUMER span `run <task>`, child of that
  enqueue span and linked to it, with the job id, task, queue, attempt and
  outcome as attributes, the exception recorded on failure. Every retry
  carries the same headers, so all attempts sit in the producer's trace;
  the attempt's span is current while the task runs, so jobs the task
  enqueues (a next step) are in that trace too.

Only this module imports opentelemetry, and nothing imports this module
unless a user names it: without the extra nothing is loaded and nothing
costs. It uses the OpenTelemetry API only; the application sets up the SDK
and its exporter (or passes a `tracer_provider`).
"""

from __future__ import annotations

from typing import Any

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("supervisor.api.otel needs OpenTelemetry: pip install "
                      "'redis-supervisor[otel]'") from exc

from supervisor.core.middleware import AttemptInfo, EnqueueInfo, Middleware
from supervisor.version import __version__

_STATE = "supervisor.api.otel"  # the key of this middleware's values in AttemptInfo.state


class Tracing(Middleware):
    """A span per enqueue and per attempt, joined through the job's headers."""

    def __init__(self, tracer_provider: Any = None) -> None:
        # A ProxyTracer when no provider is set yet: it follows the global one once set.
        self.tracer = trace.get_tracer("supervisor", __version__,
                                       tracer_provider=tracer_provider)

    def before_enqueue(self, job: EnqueueInfo) -> None:
        with self.tracer.start_as_current_span(
                f"enqueue {job.task}", kind=SpanKind.PRODUCER,
                attributes=_attributes(job.job_id, job.task, job.queue)):
            propagate.inject(job.headers)

    def before_attempt(self, attempt: AttemptInfo) -> None:
        parent = propagate.extract(attempt.headers)
        enqueued = trace.get_current_span(parent).get_span_context()
        span = self.tracer.start_span(
            f"run {attempt.task}", context=parent, kind=SpanKind.CONSUMER,
            links=[Link(enqueued)] if enqueued.is_valid else None,
            attributes={**_attributes(attempt.job_id, attempt.task, attempt.queue),
                        "supervisor.attempt": attempt.attempt,
                        "supervisor.worker": attempt.worker},
            start_time=int(attempt.started * 1e9))
        # Current while the task runs (same thread: after_attempt detaches it), so
        # what the task enqueues or calls is traced under this attempt.
        token = context.attach(trace.set_span_in_context(span))
        attempt.state[_STATE] = (span, token)

    def after_attempt(self, attempt: AttemptInfo) -> None:
        found = attempt.state.pop(_STATE, None)
        if found is None:
            return
        span, token = found
        span.set_attribute("supervisor.outcome", attempt.outcome)
        if attempt.error is not None:
            span.record_exception(attempt.error)
            span.set_status(Status(StatusCode.ERROR, f"{type(attempt.error).__name__}: "
                                                     f"{attempt.error}"))
        if attempt.retry_in is not None:
            span.set_attribute("supervisor.retry_in", attempt.retry_in)
        context.detach(token)
        span.end(end_time=int(attempt.finished * 1e9) if attempt.finished else None)


def _attributes(job_id: str, task: str, queue: str) -> dict[str, Any]:
    return {"messaging.system": "supervisor", "messaging.destination.name": queue,
            "messaging.message.id": job_id, "supervisor.job_id": job_id,
            "supervisor.task": task, "supervisor.queue": queue}
