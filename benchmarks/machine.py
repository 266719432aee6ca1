"""What the numbers were measured on: date, CPU, versions."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def describe(redis_version: str, persistence: str, ours_src: Path | None) -> dict[str, Any]:
    import supervisor

    dirty = bool(_git("status", "--porcelain", "--", "supervisor"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "redis": redis_version,
        "redis_config": persistence,
        "ours_version": supervisor.__version__,
        "ours_commit": _git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else ""),
        "ours_src": str(ours_src) if ours_src else "",
    }
