"""Small process-level chores of the master: pidfile, log files."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
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
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler
    if config.log_file:
        handler = logging.FileHandler(config.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(config.log_level)


def reopen_log_files() -> int:
    """Reopen every logging.FileHandler (after logrotate moved the file)."""
    handlers: dict[int, logging.FileHandler] = {}
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handlers[id(handler)] = handler
    for handler in handlers.values():
        handler.acquire()
        try:
            if handler.stream is not None:
                handler.stream.close()
            handler.stream = handler._open()
        finally:
            handler.release()
    return len(handlers)
