"""Smoke test of the benchmark harness itself: ours only, a tiny job count, one run.

Checks that the harness runs end to end and writes the JSON and markdown it
promises. It installs no peer and asserts nothing about timings (a benchmark
is not a test).
"""

from __future__ import annotations

import json
import shutil
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
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert set(document["systems"]) == {"ours", "ours-noresult", "ours-hook", "ours-cluster"}
    hooked = document["systems"]["ours-hook"]["workloads"]["throughput"]  # --middleware
    assert hooked["error"] == "" and hooked["summary"]["completed"]["median"] == 200
    # The same workload on a private 3-shard Redis Cluster (redis-cli makes it).
    cluster = document["systems"]["ours-cluster"]
    if "unavailable" not in cluster or shutil.which("redis-cli"):
        assert cluster["workloads"]["throughput"]["error"] == ""
        assert cluster["workloads"]["throughput"]["summary"]["completed"]["median"] == 200
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


def test_io_workload_runs_ours_and_says_what_is_not_supported_yet(tmp_path: Path) -> None:
    """The IO-bound table: ours-io-k1 runs today; the --concurrency rows either run or are
    reported as not supported yet (while `supervisor run` lacks the option), never failed."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "ours", "--runs", "1",
         "--workloads", "io", "--io-jobs", "400", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    systems = json.loads((tmp_path / "latest.json").read_text())["systems"]
    assert set(systems) == {"ours-io-sync", "ours-io-async", "ours-io-k1"}
    for name, entry in systems.items():
        assert entry["table"] == "io"
        if name != "ours-io-k1" and entry.get("unsupported"):
            assert "--concurrency" in entry["unsupported"], entry
            continue
        io = entry["workloads"]["io"]
        assert io["error"] == "", (name, io["error"])
        summary = io["summary"]
        assert summary["completed"]["median"] == 400
        assert summary["ceiling_jobs_per_s"]["median"] == 3200
        assert summary["ceiling_share"]["median"] > 0

    markdown = (tmp_path / "latest.md").read_text()
    assert "## IO-bound" in markdown and "| ours-io-k1 |" in markdown
    assert "## Throughput" not in markdown  # only the workloads that ran have a table


def test_a_row_needing_an_option_its_command_lacks_is_not_supported_yet(tmp_path: Path) -> None:
    """The check behind 'not supported yet': the option must appear whole in --help."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.context import Context
    from benchmarks.systems.base import Needs, System

    def helps(text: str) -> Needs:
        return Needs(("--concurrency",), lambda launch: [launch.python, "-c", f"print({text!r})"])

    def why(needs: Needs) -> str:
        system = System("x", "ours", "ours_app", "", lambda launch: [], needs=needs)
        context = Context(system, Path(sys.executable).parent, "redis://127.0.0.1:1", tmp_path)
        return context.unsupported()

    assert why(helps("  --workers  -w  <int>\n  --concurrency  <int>  Jobs at once")) == ""
    assert "has no --concurrency" in why(helps("  --concurrency-limit  <int>"))
    assert "has no --concurrency" in why(helps("  --workers  <int>"))
    failing = Needs(("--concurrency",), lambda launch: [launch.python, "-c", "raise SystemExit(2)"])
    assert "exited 2" in why(failing)


def test_hooks_cost_measures_each_row_in_its_own_tree(tmp_path: Path) -> None:
    """hooks_cost.py with tiny numbers, against a tree of its own: a copy of this one's
    `supervisor` (what `git archive <commit> | tar -x` makes), imported in its process."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "supervisor", other / "supervisor",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hooks_cost.py"), "--jobs", "50",
         "--runs", "2", "--against", f"copy={other}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| this tree, no middleware",
        "| this tree, one no-op middleware (before_attempt + after_attempt)", "| copy"]
    assert all(float(row.split(" | ")[1].split()[0]) > 0 for row in rows)
    assert "median of 2 interleaved runs" in done.stdout

    refused = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hooks_cost.py"), "--jobs", "10",
         "--runs", "1", "--against", f"nothing={tmp_path / 'none'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert refused.returncode == 2 and "not LABEL=DIR of a source tree" in refused.stderr
