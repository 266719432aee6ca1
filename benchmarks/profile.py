"""Where our time goes: py-spy over our workers (and our producer) during a run.

Writes raw collapsed stacks (open them in speedscope.app or flamegraph.pl)
to results/profile-*.txt and returns the top functions by own time and by
inclusive time, as shares of the on-CPU samples (py-spy leaves out idle
waits, so these are shares of CPU, not of wall time).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.context import Context
from benchmarks.peers import ensure, ours_bin
from benchmarks.systems import ALL

RATE = 250  # samples per second per process
TOP = 15


def summarise(raw: Path, root: str) -> dict[str, Any]:
    """Top functions by own (leaf) samples and by inclusive samples, below `root`.

    Only stacks through a frame named `root` (e.g. `Worker.run`) count: the
    master's and the interpreter's start-up samples are left out.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        at = next((i for i, frame in enumerate(frames) if frame.startswith(root + " ")), None)
        if at is None:
            continue
        frames = frames[at:]
        count = int(count_text)
        total += count
        own[_short(frames[-1])] += count
        for name in {_short(frame) for frame in frames}:
            inclusive[name] += count
    share = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "own_pct": [[name, share(n)] for name, n in own.most_common(TOP)],
        "inclusive_pct": [[name, share(n)] for name, n in inclusive.most_common(TOP + 10)],
        "file": str(raw),
    }


def _short(frame: str) -> str:
    """`fn (path/module.py)` -> `module.py:fn`."""
    name, _, where = frame.partition(" (")
    module = where.rstrip(")").rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{module}:{name}" if where else name


def _stop(spy: subprocess.Popen[bytes]) -> None:
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def profile_ours(url: str, jobs: int, results: Path, ours_src: Path | None) -> dict[str, Any]:
    try:
        spy_bin = ensure("tools", ("py-spy",)) / "py-spy"
    except Exception as exc:  # noqa: BLE001 - a missing profiler is a note, not a failure
        return {"error": f"py-spy unavailable: {exc}"}
    system = next(s for s in ALL if s.name == "ours")
    ctx = Context(system, ours_bin(), url, results / "logs", ours_src)
    out: dict[str, Any] = {"jobs": jobs}
    try:
        # --gil: only samples holding the GIL, i.e. Python CPU time; without it, time
        # blocked in socket calls to Redis shows too (py-spy counts it as active).
        out["worker_cpu"] = _profile_workers(ctx, spy_bin, jobs, results / "profile-worker-cpu.txt",
                                             ["--gil"])
        out["worker_active"] = _profile_workers(ctx, spy_bin, jobs,
                                                results / "profile-worker-active.txt", [])
        out["producer_single_cpu"] = _profile_producer(
            ctx, spy_bin, jobs // 2, results / "profile-producer-single-cpu.txt")
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        ctx.client.close()
    return out


def _profile_workers(ctx: Context, spy_bin: Path, jobs: int, raw: Path,
                     extra: list[str]) -> dict[str, Any]:
    ctx.reset()
    ctx.driver("enqueue", "--job", f"incr:{jobs}", "--bulk", timeout=jobs / 500)
    group = ctx.workers(2, tag="profile")
    spy: subprocess.Popen[bytes] | None = None
    try:
        group.start()
        spy = subprocess.Popen([str(spy_bin), "record", "--pid", str(group.roots[0].pid),
                                "--subprocesses", "--rate", str(RATE), "--format", "raw",
                                "--nolineno", "--output", str(raw), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx.wait_for(lambda: ctx.count() >= jobs, 120, group, "the profiled jobs")
    finally:
        if spy is not None:
            _stop(spy)
        group.stop()
    return summarise(raw, "Worker.run")


def _profile_producer(ctx: Context, spy_bin: Path, jobs: int, raw: Path) -> dict[str, Any]:
    ctx.reset()
    argv = [str(spy_bin), "record", "--rate", str(RATE), "--format", "raw", "--nolineno",
            "--gil", "--output", str(raw), "--", str(ctx.bin_dir / "python"), "-m",
            "benchmarks.apps.driver", ctx.system.app, "enqueue", "--job", f"incr:{jobs}"]
    subprocess.run(argv, cwd=ctx.cwd, env=ctx.env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=jobs / 200 + 60,
                   check=False)
    return summarise(raw, "enqueue_sync")


if __name__ == "__main__":  # pragma: no cover - manual use: summarise a saved profile
    import json

    print(json.dumps(summarise(Path(sys.argv[1]), sys.argv[2]), indent=2))
