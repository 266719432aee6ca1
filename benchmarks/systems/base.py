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
IO_SLOTS = 16  # IO-bound table: jobs in flight per worker process (threads, tasks, greenlets)


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
class Needs:
    """Options a row's worker command must offer (e.g. one another branch adds): the
    harness looks for each in the output of `help_argv` and reports the row as not
    supported yet, with the reason, when one is missing."""

    options: tuple[str, ...]
    help_argv: Callable[[Launch], list[str]]


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
    table: str = "cpu"  # "cpu": the CPU-light workloads; "io": only the IO-bound one
    needs: Needs | None = None  # worker options checked in its --help before it runs
    # "cluster": the system's broker is a private 3-shard Redis Cluster (the tasks'
    # counter stays on the single private server the harness reads).
    broker: str = "single"

    @property
    def is_ours(self) -> bool:
        return self.family == "ours"
