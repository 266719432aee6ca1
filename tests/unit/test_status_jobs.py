"""`supervisor status` shows every job a many-slot worker runs, a row each."""

from __future__ import annotations

from rich.console import Console

from supervisor.cli.status import render_status


def test_a_worker_with_three_jobs_in_flight_shows_three_job_rows() -> None:
    jobs = [{"job_id": f"job-{n}", "task": f"tasks.t{n}", "running_for": float(n)}
            for n in range(3)]
    worker = {"slot": 1, "pid": 42, "state": "busy", "job_id": "job-0", "task": "tasks.t0",
              "running_for": 0.0, "concurrency": 16, "jobs": jobs, "jobs_done": 5}
    doc = {"nodes": [{"node": "n1", "status": "alive", "workers": [worker]}], "queues": []}
    console = Console(width=200, record=True)
    console.print(render_status(doc))
    text = console.export_text()
    assert "busy 3/16" in text
    assert all(f"job-{n}" in text and f"tasks.t{n}" in text for n in range(3))
