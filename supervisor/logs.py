"""Logging set-up: text or JSON lines, to stderr (journald) or a file.

The file is reopened on USR1 (reopen_log_files: the master, then each child).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_TEXT = "%(asctime)s %(levelname)s [%(processName)s %(process)d] %(name)s: %(message)s"
_handler: logging.Handler | None = None
_fields = ("job_id", "task", "queue", "attempt", "duration")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, node, and job fields."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "node": self.node,
        }
        for name in _fields:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str = "INFO", fmt: str = "text", path: str | None = None,
                  node: str = "") -> None:
    """Configure the root logger once per process (the master before forking)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter(node or os.uname().nodename) if fmt == "json"
                         else logging.Formatter(_TEXT))
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler


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
