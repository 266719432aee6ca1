"""One system on the benchmark's Redis: its environment, its producer, its workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks.procs import WorkerGroup
from benchmarks.systems.base import IO_SLOTS, ROOT, Launch, System

DRIVER_GRACE = 120.0  # seconds a producer may take beyond what its work needs


class RunFailed(Exception):
    """A run could not complete; the message says why in one line."""


@dataclass
class Context:
    system: System
    bin_dir: Path
    redis_url: str
    logs: Path
    ours_src: Path | None = None
    # The system's broker when it is not the private server (the cluster row): its URL and
    # its masters' ports. The harness's counter stays on `redis_url`.
    broker_url: str = ""
    broker_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.redis_url, decode_responses=True)

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SUPERVISOR_", "BENCH_", "PYTHONPATH", "VIRTUAL_ENV"))}
        paths = [str(ROOT)]
        if self.ours_src is not None and self.system.is_ours:
            paths.insert(0, str(self.ours_src))
        env.update({"BENCH_REDIS_URL": self.redis_url, "BENCH_BROKER_URL": self.broker,
                    "BENCH_VARIANT": self.system.variant,
                    "BENCH_IO_SLOTS": str(IO_SLOTS),
                    "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
                    "PATH": f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"})
        return env

    @property
    def cwd(self) -> Path:
        """Ours from another source tree runs there: `-m` puts the cwd first on the path."""
        if self.ours_src is not None and self.system.is_ours:
            return self.ours_src
        return ROOT

    def reset(self) -> None:
        """Empty the private server (and cluster) between runs (they are the harness's own)."""
        self.client.flushall()
        for port in self.broker_ports:
            node = redis.Redis(port=port)
            node.flushall()
            node.close()

    def driver(self, *args: str, timeout: float) -> dict[str, Any]:
        """Run the producer in the system's virtualenv; its JSON line."""
        return self.driver_result(self.driver_start(*args), timeout)

    def driver_start(self, *args: str) -> subprocess.Popen[str]:
        """Start the producer (it imports and connects while the caller goes on)."""
        argv = [str(self.bin_dir / "python"), "-m", "benchmarks.apps.driver", self.system.app,
                *args]
        return subprocess.Popen(argv, cwd=self.cwd, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def driver_result(self, proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        """Wait for a producer started by `driver_start`; its JSON line."""
        try:
            stdout, stderr = proc.communicate(timeout=timeout + DRIVER_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RunFailed(f"producer timed out: {' '.join(map(str, proc.args))}") from None
        if proc.returncode != 0:
            tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RunFailed(f"producer failed: {tail[:200]}")
        return dict(json.loads(stdout.strip().splitlines()[-1]))

    def workers(self, count: int = 2, tag: str = "") -> WorkerGroup:
        launch = Launch(self.bin_dir, self.broker, count)
        name = f"{self.system.name}{'-' + tag if tag else ''}.log"
        return WorkerGroup(self.system.commands(launch), self.env(), self.cwd, self.logs / name)

    def unsupported(self) -> str:
        """Why this row cannot run yet ('' when it can): an option it needs that its
        worker command's --help does not offer, or a --help that fails."""
        needs = self.system.needs
        if needs is None:
            return ""
        argv = needs.help_argv(Launch(self.bin_dir, self.redis_url))
        shown = " ".join([Path(argv[0]).name, *argv[1:]])
        # Wide and plain, so a help formatter neither wraps nor truncates option names.
        env = {**self.env(), "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}
        try:
            done = subprocess.run(argv, cwd=self.cwd, env=env, capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"`{shown}` failed: {exc}"
        if done.returncode != 0:
            return f"`{shown}` exited {done.returncode}"
        missing = [option for option in needs.options
                   if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout)]
        if missing:
            return f"`{shown}` has no {', '.join(missing)}"
        return ""

    def count(self) -> int:
        return int(self.client.get("bench:count") or 0)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, group: WorkerGroup,
                 what: str) -> None:
        """Poll until `predicate()`; fail if the deadline passes or every worker died."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RunFailed(f"timed out after {timeout:.0f}s waiting for {what}; "
                                f"see {group.log}")
            if len(group.dead_roots()) == len(group.roots):
                raise RunFailed(f"workers exited ({group.dead_roots()}); see {group.log}")
            time.sleep(0.02)
