"""The markdown tables: one per workload, every row with its ratio to ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.aggregate import median
from benchmarks.apps.common import IO_WAIT
from benchmarks.systems import IO_LEFT_OUT
from benchmarks.systems.base import IO_SLOTS
from benchmarks.workloads import io_ceiling

Format = Callable[[float], str]


def rate(value: float) -> str:
    return f"{value:,.0f}"


def micro(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def milli(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def plain(value: float) -> str:
    return f"{value:.2f}"


def megabytes(value: float) -> str:
    return f"{value:.1f}"


def seconds(value: float) -> str:
    return f"{value:.2f}"


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def cell(summary: dict[str, Any], key: str, fmt: Format) -> str:
    value = summary.get(key)
    if not isinstance(value, dict) or value.get("median") is None:
        return "–"
    text = fmt(value["median"])
    if value["min"] != value["max"]:
        text += f" ({fmt(value['min'])}–{fmt(value['max'])})"
    return text


def ratio(summary: dict[str, Any], ours: dict[str, Any] | None, key: str) -> str:
    mine, base = median(summary, key), median(ours or {}, key)
    if mine is None or not base:
        return "–"
    factor = mine / base
    return f"{factor:.2f}×" if factor < 10 else f"{factor:,.0f}×"


# Columns more than one table shows: (title, metric, format).
FROM_START = ("jobs/s from start", "jobs_per_s", rate)
STEADY = ("steady jobs/s", "steady_jobs_per_s", rate)
WORKER_CPU = ("worker CPU µs/job", "worker_cpu_us_per_job", micro)
REDIS_CPU = ("Redis CPU µs/job", "redis_cpu_us_per_job", micro)
REDIS_CMDS = ("Redis cmds/job", "redis_cmds_per_job", plain)
PEAK_RSS = ("peak RSS MB/proc", "peak_rss_mb", megabytes)
PEAK_USS = ("peak USS MB/proc", "peak_uss_mb", megabytes)
PEAK_PSS = ("peak PSS MB/proc", "peak_pss_mb", megabytes)


def _summary(entry: dict[str, Any], workload: str) -> tuple[dict[str, Any], str]:
    data = entry.get("workloads", {}).get(workload)
    if data is None:
        return {}, entry.get("unavailable", "")
    return data.get("summary", {}), data.get("error", "")


def table(document: dict[str, Any], workload: str,
          columns: list[tuple[str, str, Format]], ratio_key: str, *, kind: str = "cpu",
          base: str = "ours", ratio_title: str = "÷ ours", how: bool = False) -> list[str]:
    """Rows for every system of the `kind` table that ran `workload`, each with its ratio
    to the row `base`; errors, unavailability and lack of support said in the row."""
    systems = {name: entry for name, entry in document["systems"].items()
               if entry.get("table", "cpu") == kind}
    ours = _summary(systems[base], workload)[0] if base in systems else None
    head = ["system", *[title for title, _, _ in columns], ratio_title] + (["how"] * how)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in systems.items():
        summary, problem = _summary(entry, workload)
        tail = f" {entry['how']} |" if how else ""
        if entry.get("unsupported"):
            summary, problem = {}, f"not supported yet: {entry['unsupported']}"
        elif not summary and problem:
            problem = f"not measured: {problem}"
        if not summary and not problem:
            continue
        if not summary:
            lines.append(f"| {name} | " + problem.replace("|", "/") + " |"
                         + " |" * len(columns) + tail)
            continue
        cells = [cell(summary, key, fmt) for _, key, fmt in columns]
        if summary.get("timed_out"):
            cells[0] += " (partial: timed out)"
        got, wanted = median(summary, "received"), median(summary, "jobs")
        if got is not None and wanted and got < wanted:
            cells[0] += f" (only {got:,.0f} of {wanted:,.0f} ran in time)"
        if problem:
            cells[-1] += f" (error in a later run: {problem[:60]})"
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {ratio(summary, ours, ratio_key)} |" + tail)
    return lines


def markdown(document: dict[str, Any]) -> str:
    meta, plan = document["meta"], document["plan"]
    out = [
        f"# Benchmark: {meta['date']}",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gb']} GB, "
        f"Linux {meta['kernel']}, Python {meta['python']}. Redis {meta['redis']} "
        f"({meta['redis_config']}), private to the run. Ours: {meta['ours_version']} "
        f"@ {meta['ours_commit']}"
        + (f" (run from the source tree {meta['ours_src']})" if meta.get("ours_src") else "")
        + f". Median of {plan['runs']} run(s), (min–max); "
        "÷ ours = this row's median over ours'.",
    ]
    wanted = set(plan.get("workloads", ("throughput", "noop", "latency")))
    if "throughput" in wanted:
        out += _throughput_table(document)
    if "noop" in wanted:
        out += _noop_table(document)
    if "latency" in wanted:
        out += _latency_table(document)
    out += _ours_tables(document)
    out += _io_table(document)
    out += _profile(document.get("profile"))
    unavailable = [(n, e["unavailable"]) for n, e in document["systems"].items()
                   if e.get("unavailable")]
    if unavailable:
        out += ["", "## Not measured", ""] + [f"- {n}: {why}" for n, why in unavailable]
    out += ["", "## How each system ran", ""]
    for name, entry in document["systems"].items():
        versions = ", ".join(f"{k} {v}" for k, v in sorted(entry.get("versions", {}).items()))
        out.append(f"- **{name}**: {entry['how']}" + (f" ({versions})" if versions else ""))
    return "\n".join(out) + "\n"


def _throughput_table(document: dict[str, Any]) -> list[str]:
    plan = document["plan"]
    return [
        "",
        f"## Throughput: {plan['jobs']:,} jobs (one INCR each) enqueued before 2 workers start",
        "",
        *table(document, "throughput", [
            FROM_START, STEADY, WORKER_CPU, REDIS_CPU, REDIS_CMDS, PEAK_RSS, PEAK_USS, PEAK_PSS,
            ("enqueue jobs/s (bulk)", "enqueue_jobs_per_s", rate),
        ], "jobs_per_s"),
    ]


def _noop_table(document: dict[str, Any]) -> list[str]:
    plan = document["plan"]
    return [
        "",
        f"## No-op: {plan['jobs']:,} jobs that do nothing (every 100th an INCR marker), "
        "enqueued one call each",
        "",
        *table(document, "noop", [
            FROM_START, STEADY, WORKER_CPU, REDIS_CPU, REDIS_CMDS,
            ("enqueue jobs/s (one call each)", "enqueue_jobs_per_s", rate),
        ], "jobs_per_s"),
    ]


def _latency_table(document: dict[str, Any]) -> list[str]:
    plan = document["plan"]
    return [
        "",
        f"## Pickup latency: idle workers, {plan['latency_jobs']:,} jobs one at a time at "
        f"{plan['latency_rate']:.0f}/s (ms)",
        "",
        *table(document, "latency", [
            ("p50", "p50_ms", milli), ("p90", "p90_ms", milli), ("p99", "p99_ms", milli),
            ("max", "max_ms", milli), ("idle RSS MB/proc", "idle_rss_mb", megabytes),
            ("idle USS MB/proc", "idle_uss_mb", megabytes),
            ("idle PSS MB/proc", "idle_pss_mb", megabytes),
            ("idle PSS MB, all procs", "idle_pss_total_mb", megabytes),
        ], "p50_ms"),
    ]


def _ours_tables(document: dict[str, Any]) -> list[str]:
    ours = document["systems"].get("ours", {}).get("workloads", {})
    out: list[str] = []
    scaling = sorted((int(k.split("-")[1]), v) for k, v in ours.items()
                     if k.startswith("scaling-"))
    if scaling:
        base = median(scaling[0][1]["summary"], "jobs_per_s")
        out += ["", "## Scaling: ours, throughput workload, N workers", "",
                "| workers | jobs/s from start | steady jobs/s | worker CPU µs/job | ÷ first |",
                "|---|---|---|---|---|"]
        for count, data in scaling:
            s = data["summary"]
            if not s:
                out.append(f"| {count} | failed: {data['error']} | | | |")
                continue
            mine = median(s, "jobs_per_s")
            factor = f"{mine / base:.2f}×" if mine and base else "–"
            out.append(f"| {count} | {cell(s, 'jobs_per_s', rate)} | "
                       f"{cell(s, 'steady_jobs_per_s', rate)} | "
                       f"{cell(s, 'worker_cpu_us_per_job', micro)} | {factor} |")
    fair = ours.get("fairness")
    if fair:
        s = fair["summary"]
        out += ["", "## Fairness: ours, 4 workers, 8 jobs of 1 s", ""]
        out.append(f"Wall time {cell(s, 'wall_s', seconds)} s (ideal {cell(s, 'ideal_s', seconds)}"
                   " s)." if s else f"Failed: {fair['error']}")
    kill = ours.get("kill_child")
    if kill:
        s = kill["summary"]
        out += ["", "## Kill a child halfway: ours, every job accounted for", ""]
        out.append(f"Lost {cell(s, 'lost', rate)}, duplicates {cell(s, 'duplicates', rate)}, "
                   f"settled {cell(s, 'settled_s_after_kill', seconds)} s after the kill."
                   if s else f"Failed: {kill['error']}")
    return out


IO_RATE = "first_to_last_jobs_per_s"  # the IO table's ratio and ceiling share


def _io_table(document: dict[str, Any]) -> list[str]:
    """The IO-bound table: every row over the best of ours' rows that ran."""
    systems = {n: e for n, e in document["systems"].items() if e.get("table") == "io"}
    if not systems:
        return []
    measured = [(value, name) for name, entry in systems.items() if entry["family"] == "ours"
                for value in [median(_summary(entry, "io")[0], IO_RATE)] if value]
    base = max(measured)[1] if measured else ""
    jobs = document["plan"].get("io_jobs", 0)
    out = ["", f"## IO-bound: {jobs:,} jobs that wait {IO_WAIT * 1000:.0f} ms then INCR, "
           f"2 worker processes, {IO_SLOTS} in flight per process", "",
           f"Ceiling: 2 × {IO_SLOTS} slots / {IO_WAIT * 1000:.0f} ms = "
           f"{io_ceiling(2):,.0f} jobs/s. *jobs/s first→last*: from the first job counted to "
           "the last (boot left out); the share of the ceiling and the ratio are of that rate. "
           + (f"÷ best ours: over **{base}**, the best of ours' rows that ran."
              if base else "No row of ours ran: no ratio."), "",
           *table(document, "io", [
               ("jobs/s first→last", IO_RATE, rate),
               ("share of ceiling", "ceiling_share", percent),
               FROM_START, STEADY, WORKER_CPU, REDIS_CMDS, PEAK_RSS, PEAK_USS,
           ], IO_RATE, kind="io", base=base, ratio_title="÷ best ours", how=True)]
    if IO_LEFT_OUT:
        out += [""] + [f"Not in this table: {name}: {why}." for name, why in IO_LEFT_OUT.items()]
    return out


PROFILES = (("worker_cpu", "Our worker, CPU (py-spy --gil)"),
            ("worker_active", "Our worker, on-CPU plus blocked in Redis round trips"),
            ("producer_single_cpu", "Our producer, one delay() per job, CPU"))


def _profile(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    out = ["", f"## Profiles (py-spy, throughput workload, {profile.get('jobs', 0):,} jobs)"]
    if profile.get("error"):
        out += ["", f"Profiling failed: {profile['error']}"]
    for key, title in PROFILES:
        data = profile.get(key)
        if not data:
            continue
        out += ["", f"### {title}: {data['samples']:,} samples ({data['file']})", "",
                "| own % | function | | inclusive % | function |", "|---|---|---|---|---|"]
        own, inclusive = data["own_pct"], data["inclusive_pct"][1:]  # [0] is the root
        for row in range(max(len(own), len(inclusive))):
            left = own[row] if row < len(own) else ["", ""]
            right = inclusive[row] if row < len(inclusive) else ["", ""]
            out.append(f"| {left[1]} | `{left[0]}` | | {right[1]} | `{right[0]}` |"
                       .replace("``", ""))
    return out
