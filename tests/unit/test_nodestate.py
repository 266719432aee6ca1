"""The node-state buffer (seqlock across a real fork), restart reasons, timelines, metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import urllib.request
from typing import Any

import pytest

from supervisor.core.record import JobRecord
from supervisor.core.timeline import timeline
from supervisor.errors import CHILD_EXIT_BOOT_FAILURE, CHILD_EXIT_RECYCLE
from supervisor.fork.nodestate import NodeStateBuffer
from supervisor.master.children import Child
from supervisor.master.metrics_http import MasterCollector, MasterNumbers, MetricsServer
from supervisor.master.observer import restart_reason
from supervisor.master.process import ExitInfo
from supervisor.worker import metrics

# --- the buffer ---------------------------------------------------------------


def test_nothing_written_reads_none() -> None:
    assert NodeStateBuffer(4096).read() is None


def test_roundtrip_and_overwrite_with_a_shorter_payload() -> None:
    buffer = NodeStateBuffer(4096)
    assert buffer.write_state({"node": "a", "workers": [{"slot": 1}, {"slot": 2}]})
    assert buffer.write_state({"node": "b", "workers": []})
    assert buffer.read_state() == {"node": "b", "workers": []}


def test_a_write_in_progress_is_never_returned() -> None:
    buffer = NodeStateBuffer(4096)
    buffer.write(b'{"n": 1}')
    buffer._map[0:8] = (3).to_bytes(8, "little")  # odd: the writer is mid-write
    assert buffer.read(tries=3) is None


def test_too_big_a_snapshot_keeps_the_node_and_drops_workers() -> None:
    buffer = NodeStateBuffer(2048)
    workers = [{"slot": slot, "task": "x" * 100} for slot in range(100)]
    assert buffer.write_state({"node": "a", "workers": workers})
    state = buffer.read_state()
    assert state is not None and state["node"] == "a" and state["truncated"] is True
    assert 0 < len(state["workers"]) < 100


def test_a_forked_reader_sees_only_whole_snapshots_while_the_master_writes() -> None:
    """The real thing: the child maps the buffer across fork and reads during writes."""
    buffer = NodeStateBuffer(1 << 16)
    buffer.write_state({"n": 0, "pad": ""})
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader (a worker)
        os.close(read_fd)
        bad, seen = 0, set()
        try:
            for _ in range(20000):
                state = buffer.read_state()
                if state is None:
                    continue
                seen.add(state["n"])
                if state["pad"] != "x" * (state["n"] % 5000):
                    bad += 1
        except Exception:  # noqa: BLE001 - a torn read that is not even JSON
            bad += 1
        os.write(write_fd, json.dumps({"bad": bad, "distinct": len(seen)}).encode())
        os._exit(0)
    os.close(write_fd)
    n = 0
    while True:  # the writer (the master): payloads of changing length until the reader ends
        n += 1
        buffer.write_state({"n": n, "pad": "x" * (n % 5000)})
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            break
    with os.fdopen(read_fd) as pipe:
        report = json.loads(pipe.read())
    assert report["bad"] == 0
    assert report["distinct"] > 1, "the reader saw the writer's progress"


# --- restart reasons ----------------------------------------------------------


def child(**changes: Any) -> Child:
    values: dict[str, Any] = dict(pid=10, slot=1, generation=1, status=None, started=0.0)
    values.update(changes)
    return Child(**values)


@pytest.mark.parametrize(("changes", "info", "expected", "reason"), [
    ({}, ExitInfo(None, signal.SIGKILL), False, "crashed"),
    ({}, ExitInfo(CHILD_EXIT_RECYCLE, None), True, "max_jobs"),
    ({"retiring": True, "reason": "recycled: over memory"}, ExitInfo(0, None), True, "memory"),
    ({"killed": True, "reason": "job over its time limit"}, ExitInfo(None, 9), False, "timeout"),
    ({"aborted": True, "reason": "hung"}, ExitInfo(None, 6), False, "hung"),
    ({"retiring": True, "reason": "replaced by reload"}, ExitInfo(0, None), True, "reload"),
    ({"retiring": True, "reason": "scaled down"}, ExitInfo(0, None), True, None),
    ({"retiring": True, "reason": "stop"}, ExitInfo(0, None), True, None),
    ({}, ExitInfo(CHILD_EXIT_BOOT_FAILURE, None), False, "boot_failure"),
])
def test_restart_reasons(changes: dict[str, Any], info: ExitInfo, expected: bool,
                         reason: str | None) -> None:
    assert restart_reason(child(**changes), info, expected, running=True) == reason


def test_nothing_is_a_restart_while_the_master_stops() -> None:
    assert restart_reason(child(), ExitInfo(None, 9), False, running=False) is None


# --- timelines ----------------------------------------------------------------

FLAKY = {
    "id": "j1", "task": "tasks.examples.flaky", "queue": "default", "state": "succeeded",
    "created": 100.0, "enqueued_by": "host-a", "attempt": 3, "result": 3, "finished_at": 103.5,
    "attempts": [
        {"attempt": 1, "worker": "node-a/41/99.00", "started": 100.1, "finished": 100.2,
         "outcome": "retry", "exc_type": "TemporaryGlitch", "message": "no", "reason": "error"},
        {"attempt": 2, "worker": "node-b/52/99.10", "started": 101.0, "finished": 101.5,
         "outcome": "retry", "exc_type": "TemporaryGlitch", "message": "no", "reason": "error"},
        {"attempt": 3, "worker": "node-a/41/99.00", "started": 103.0, "finished": 103.5,
         "outcome": "succeeded"},
    ],
}


def test_timeline_of_a_job_that_failed_twice_then_succeeded() -> None:
    events = timeline(JobRecord(FLAKY))
    assert [e["event"] for e in events] == [
        "enqueued", "started", "retry", "started", "retry", "started", "succeeded", "succeeded"]
    assert events[0]["host"] == "host-a"
    assert (events[3]["node"], events[3]["pid"]) == ("node-b", 52)
    assert events[2]["exc_type"] == "TemporaryGlitch" and events[2]["duration"] == 0.1
    assert events[-1] == {"at": 103.5, "event": "succeeded", "result": 3}


def test_timeline_of_a_pending_retry_shows_when_it_is_due() -> None:
    record = {**FLAKY, "state": "retrying", "due": 105.0, "attempts": FLAKY["attempts"][:2]}
    del record["result"]
    events = timeline(JobRecord(record))
    assert events[-1] == {"at": 105.0, "event": "due", "attempt": 3}


# --- metrics --------------------------------------------------------------------


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples
            if not s.name.endswith("_created")}


def test_counted_jobs_flush_to_the_same_numbers_as_direct_observations() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    worker = metrics.PrometheusMetrics()
    reference_registry = CollectorRegistry()
    reference = Histogram("supervisor_job_duration_seconds", "x", ["task"],
                          buckets=metrics.DURATION_BUCKETS, registry=reference_registry)
    durations = [0.0004, 0.001, 0.003, 0.2, 0.25, 7.0, 1000.0]
    for seconds in durations:
        worker.job("t.a", "default", metrics.SUCCEEDED, seconds)
        reference.labels("t.a").observe(seconds)
    worker.job("t.a", "default", metrics.INVALID, None)
    worker.flush()
    worker.flush()  # nothing new: adds nothing
    ours = samples(worker.registry)
    theirs = samples(reference_registry)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key
    assert worker.jobs_total.labels("t.a", "default", "succeeded")._value.get() == 7
    assert worker.jobs_total.labels("t.a", "default", "invalid")._value.get() == 1


def test_metrics_server_answers_without_a_thread_of_its_own() -> None:
    numbers = MasterNumbers(workers_up=2, workers_target=3, generation=1,
                            restarts={"crashed": 1})
    collector = MasterCollector(lambda: numbers)

    def page() -> tuple[bytes, str]:
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry()
        registry.register(collector)  # type: ignore[arg-type]
        return generate_latest(registry), "text/plain; version=0.0.4"

    server = MetricsServer("127.0.0.1", 0, page)
    host, port = server.address
    replies: dict[str, Any] = {}

    def scrape(path: str) -> None:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as reply:
                replies[path] = reply.read().decode()
        except Exception as exc:  # noqa: BLE001
            replies[path] = exc

    threads = [threading.Thread(target=scrape, args=(path,)) for path in ("/metrics", "/nope")]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):  # the master's loop, in small
            server.poll(0.0)
            threads[0].join(0.01)
    finally:
        server.close()
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(replies["/metrics"])}
    assert families["supervisor_workers_up"].samples[0].value == 2
    restarts = {s.labels["reason"]: s.value for s in families["supervisor_child_restarts"].samples}
    assert restarts["crashed"] == 1 and restarts["hung"] == 0
    assert "404" in str(replies["/nope"])


def test_a_taken_port_is_a_clear_config_error() -> None:
    from supervisor.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(ConfigError, match="--metrics-port"):
            MetricsServer("127.0.0.1", taken.getsockname()[1], lambda: (b"", ""))
