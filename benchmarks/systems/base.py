"""What the harness knows about one system under test: how to start its workers.

Every system shares the same task semantics (benchmarks/apps/common.py) and
the same producer driver (benchmarks/apps/driver.py); a `System` only says
which virtualenv, which task module, and which worker command lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True, slots=True)
class Launch:
    """Where a system's processes run: its virtualenv's bin dir and the Redis URL."""

    bin_dir: Path
    redis_url: str
    workers: int = 2

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def python(self) -> str:
        return self.tool("python")


@dataclass(frozen=True, slots=True)
class System:
    name: str  # row label and --only key, e.g. "celery-acks-late"
    family: str  # virtualenv family: "ours", "celery", ...
    app: str  # module of benchmarks.apps with the tasks and producer
    how: str  # one line for the table: how the workers run
    commands: Callable[[Launch], list[list[str]]]  # one argv per root process
    variant: str = ""  # BENCH_VARIANT for workers and producers
    requirements: tuple[str, ...] = ()  # pip requirements of the family (pins: constraints)
    primary: bool = True  # False: a second configuration of a peer; skips the no-op variant

    @property
    def is_ours(self) -> bool:
        return self.family == "ours"
