"""The benchmark runner: `python benchmarks/run.py [--quick] [--only NAME] [--runs N]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import machine, report, workloads
from benchmarks.aggregate import summarise
from benchmarks.context import Context
from benchmarks.peers import PeerUnavailable, ensure, ours_bin, versions
from benchmarks.redis_server import PERSISTENCE, private_cluster, private_redis
from benchmarks.systems import ALL, System

HERE = Path(__file__).resolve().parent
OURS_ONLY = {"fairness", "scaling"}  # workloads only ours runs
NORESULT_SKIPS = {"latency"}  # the results-off variant is a throughput comparison


@dataclass(frozen=True, slots=True)
class Plan:
    runs: int = 3
    jobs: int = 20_000
    latency_jobs: int = 2_000
    latency_rate: float = 200.0
    scaling: tuple[int, ...] = (1, 2, 4, 8)
    timeout: float = 10.0  # per throughput run: past it the rate of what finished is reported
    io_jobs: int = 10_000
    io_timeout: float = 20.0  # per IO-bound run (enough for 500 jobs/s and up to finish)
    workloads: tuple[str, ...] = ("throughput", "noop", "latency", "scaling", "fairness", "io")
    kill_child: bool = False


QUICK = Plan(runs=1, jobs=2_000, latency_jobs=400, scaling=(1, 2, 4), timeout=10.0,
             io_jobs=2_000)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def selected(only: list[str]) -> list[System]:
    if not only:
        return list(ALL)
    names = {name.strip() for item in only for name in item.split(",") if name.strip()}
    chosen = [s for s in ALL if s.name in names or s.family in names]
    unknown = names - {s.name for s in chosen} - {s.family for s in chosen}
    if unknown:
        raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(s.name for s in ALL)}")
    return chosen


def tasks_for(system: System, plan: Plan) -> list[tuple[str, Callable[[Context], dict[str, Any]]]]:
    """(result key, one run) for each workload this system takes part in."""
    wanted = set(plan.workloads)
    todo: list[tuple[str, Callable[[Context], dict[str, Any]]]] = []
    if system.table == "io":  # the IO-bound table's rows take part in nothing else
        if "io" in wanted:
            todo.append(("io", lambda c: workloads.io(c, plan.io_jobs, timeout=plan.io_timeout)))
        return todo
    if "throughput" in wanted:
        todo.append(("throughput", lambda c: workloads.throughput(c, plan.jobs,
                                                                  timeout=plan.timeout)))
    if "noop" in wanted and system.primary:
        todo.append(("noop", lambda c: workloads.throughput(c, plan.jobs, kind="noop",
                                                            timeout=plan.timeout)))
    if "latency" in wanted and system.variant != "noresult":
        todo.append(("latency", lambda c: workloads.latency(c, plan.latency_jobs,
                                                            plan.latency_rate)))
    if system.name != "ours":
        return [item for item in todo if item[0] not in OURS_ONLY]
    if "scaling" in wanted:
        for count in plan.scaling:
            if count == 2 and "throughput" in wanted:
                continue  # the throughput workload is the 2-worker point
            todo.append((f"scaling-{count}", lambda c, n=count: workloads.throughput(
                c, plan.jobs, workers=n, timeout=plan.timeout)))
    if "fairness" in wanted:
        todo.append(("fairness", lambda c: workloads.fairness(c)))
    if plan.kill_child:
        todo.append(("kill_child", lambda c: workloads.kill_child(c, plan.jobs)))
    return todo


def run_system(system: System, plan: Plan, url: str, logs: Path,
               ours_src: Path | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"how": system.how, "family": system.family,
                             "table": system.table, "workloads": {}}
    try:
        bin_dir = ours_bin() if system.is_ours else ensure(system.family, system.requirements)
    except PeerUnavailable as exc:
        log(f"{system.name}: unavailable: {exc}")
        entry["unavailable"] = str(exc)
        return entry
    entry["versions"] = versions(bin_dir) if not system.is_ours else {}
    if system.broker == "cluster":
        try:
            with private_cluster() as (cluster_url, ports):
                ctx = Context(system, bin_dir, url, logs, ours_src, cluster_url, tuple(ports))
                return _run_workloads(system, plan, ctx, entry)
        except (RuntimeError, OSError) as exc:
            log(f"{system.name}: unavailable: {exc}")
            entry["unavailable"] = str(exc)
            return entry
    return _run_workloads(system, plan, Context(system, bin_dir, url, logs, ours_src), entry)


def _run_workloads(system: System, plan: Plan, ctx: Context,
                   entry: dict[str, Any]) -> dict[str, Any]:
    why = ctx.unsupported()
    if why:
        log(f"{system.name}: not supported yet: {why}")
        entry["unsupported"] = why
        ctx.client.close()
        return entry
    for key, once in tasks_for(system, plan):
        runs: list[dict[str, Any]] = []
        error = ""
        for number in range(1, plan.runs + 1):
            log(f"{system.name}: {key} run {number}/{plan.runs}")
            began = time.monotonic()
            try:
                runs.append(once(ctx))
                runs[-1]["harness_wall_s"] = time.monotonic() - began
            except Exception as exc:  # noqa: BLE001 - one failure must not end the benchmark
                error = f"{type(exc).__name__}: {exc}"
                log(f"{system.name}: {key} failed: {error}")
                break
        entry["workloads"][key] = {"summary": summarise(runs), "runs": runs, "error": error}
    if system.name == "ours" and "scaling" in plan.workloads and 2 in plan.scaling \
            and "throughput" in entry["workloads"]:
        entry["workloads"]["scaling-2"] = entry["workloads"]["throughput"]
    ctx.client.close()
    return entry


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short version (1 run, 2,000 jobs)")
    parser.add_argument("--only", action="append", default=[],
                        help="system name or family (repeatable, comma-separated)")
    parser.add_argument("--runs", type=int, help="runs per figure (median, min, max)")
    parser.add_argument("--jobs", type=int, help="jobs per throughput run")
    parser.add_argument("--latency-jobs", type=int, help="jobs per pickup-latency run")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ",".join(
        Plan().workloads))
    parser.add_argument("--timeout", type=float, help="seconds per throughput run")
    parser.add_argument("--io-jobs", type=int, help="jobs per IO-bound run")
    parser.add_argument("--io-timeout", type=float, help="seconds per IO-bound run")
    parser.add_argument("--kill-child", action="store_true",
                        help="also: ours with one child SIGKILLed halfway; account for every job")
    parser.add_argument("--profile", action="store_true",
                        help="also: py-spy profile of our workers during a throughput run")
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="where latest.md / latest.json go")
    parser.add_argument("--ours-src", type=Path,
                        help="put this source tree of `supervisor` first on ours' path")
    return parser.parse_args(argv)


def make_plan(options: argparse.Namespace) -> Plan:
    plan = QUICK if options.quick else Plan()
    changes: dict[str, Any] = {"kill_child": options.kill_child}
    for field_name in ("runs", "jobs", "latency_jobs", "timeout", "io_jobs", "io_timeout"):
        value = getattr(options, field_name)
        if value is not None:
            changes[field_name] = value
    if options.workloads:
        changes["workloads"] = tuple(w.strip() for w in options.workloads.split(",") if w)
    return replace(plan, **changes)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    plan = make_plan(options)
    systems = selected(options.only)
    results_dir: Path = options.results
    logs = results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    document: dict[str, Any] = {"plan": asdict(plan), "systems": {}}
    with private_redis() as (server, redis_version):
        log(f"private redis {redis_version} on {server.url} ({PERSISTENCE})")
        document["meta"] = machine.describe(redis_version, PERSISTENCE, options.ours_src)
        for system in systems:
            if tasks_for(system, plan):  # rows of workloads left out are left out too
                document["systems"][system.name] = run_system(system, plan, server.url, logs,
                                                              options.ours_src)
        if options.profile:
            from benchmarks import profile

            document["profile"] = profile.profile_ours(server.url, max(plan.jobs, 20_000) * 3,
                                                       results_dir, options.ours_src)
    document["meta"]["elapsed_s"] = round(time.time() - started, 1)
    markdown = report.markdown(document)
    (results_dir / "latest.json").write_text(json.dumps(document, indent=2, default=str))
    (results_dir / "latest.md").write_text(markdown)
    print(markdown)
    log(f"wrote {results_dir / 'latest.md'} and latest.json in {document['meta']['elapsed_s']}s")
    return 0
