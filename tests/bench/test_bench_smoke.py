"""Smoke test of the benchmark harness itself: ours only, a tiny job count, one run.

Checks that the harness runs end to end and writes the JSON and markdown it
promises. It installs no peer and asserts nothing about timings (a benchmark
is not a test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

THROUGHPUT_FIELDS = {"jobs_per_s", "steady_jobs_per_s", "worker_cpu_us_per_job",
                     "redis_cpu_us_per_job", "redis_cmds_per_job", "peak_rss_mb",
                     "peak_uss_mb", "peak_pss_mb", "enqueue_jobs_per_s"}
LATENCY_FIELDS = {"p50_ms", "p90_ms", "p99_ms", "max_ms", "idle_rss_mb", "idle_uss_mb",
                  "idle_pss_mb", "idle_pss_total_mb"}


def test_harness_runs_ours_and_writes_its_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "ours", "--runs", "1",
         "--jobs", "200", "--latency-jobs", "20", "--workloads", "throughput,noop,latency",
         "--timeout", "20", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert set(document["systems"]) == {"ours", "ours-noresult"}
    assert document["meta"]["redis"] and document["plan"]["jobs"] == 200

    ours = document["systems"]["ours"]["workloads"]
    assert set(ours) == {"throughput", "noop", "latency"}
    for key in ("throughput", "noop", "latency"):
        assert ours[key]["error"] == "", ours[key]["error"]
    throughput = ours["throughput"]["summary"]
    assert set(throughput) >= THROUGHPUT_FIELDS
    assert throughput["completed"]["median"] == 200
    assert set(throughput["jobs_per_s"]) == {"median", "min", "max"}
    assert set(ours["latency"]["summary"]) >= LATENCY_FIELDS
    assert ours["latency"]["summary"]["received"]["median"] == 20
    # Memory per process: the master and its two children, each with RSS >= PSS >= USS.
    idle = ours["latency"]["summary"]["idle_memory_each"]
    assert len(idle) == 3
    assert all(p["rss_mb"] >= p["pss_mb"] >= p["uss_mb"] > 0 for p in idle), idle

    markdown = (tmp_path / "latest.md").read_text()
    assert "| ours |" in markdown and "Pickup latency" in markdown
    assert "latest.md" in done.stderr
    assert not (tmp_path / "logs" / "ours-profile.log").exists()
