"""Small process-level chores of the master: the pidfile, logging when the CLI set none."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from supervisor.config import Config

log = logging.getLogger("supervisor.master")


class PidFile:
    """Written at start (atomically), removed at exit if it still names us."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.pid = os.getpid()

    def write(self) -> None:
        if self.path is None:
            return
        self.pid = os.getpid()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{self.pid}")
        temporary.write_text(f"{self.pid}\n")
        os.replace(temporary, self.path)

    def remove(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if int(self.path.read_text().strip() or 0) == self.pid:
                self.path.unlink()


def ensure_logging(config: Config) -> None:
    """Give the master a log handler if the CLI set up none (stderr, journald-friendly)."""
    if logging.getLogger().handlers:
        return
    from supervisor.logs import setup_logging

    setup_logging(config.log_level, config.log_format, config.log_file, config.node_name)
