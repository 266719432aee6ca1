"""The outcome of reloads, for `supervisor reload --wait` and for STATUS=.

systemd 252 has no `Type=notify-reload`, and `ExecReload=kill -HUP` returns
before the new generation is up, succeeding even when the reload is refused.
So the master keeps a small JSON file next to its pidfile (`PIDFILE.reload`),
rewritten atomically at each step of a reload:

    {"pid": 1234, "seq": 3, "state": "reloading" | "done" | "failed" | "started",
     "generation": 2, "code": 5, "reason": "..."}

`seq` counts the HUPs the master has taken. `supervisor reload --wait` reads
it, sends HUP, and waits for a higher `seq` whose state is `done` or
`failed`; its exit code is 0, or the `code` of the failure (2: the config
was refused, 5: the new code cannot be imported, 8: Redis refused the new
workers). No Redis involved: the master stays free of it.

The text of the last failure also stays in STATUS= until a reload succeeds.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

SUFFIX = ".reload"


def state_path(pidfile: str) -> Path:
    return Path(pidfile + SUFFIX)


def read_state(pidfile: str) -> dict[str, Any] | None:
    """The last state the master wrote (None: no file, or unreadable)."""
    try:
        data = json.loads(state_path(pidfile).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ReloadReport:
    """The master's side: what it says about reloads, in the file and in STATUS=."""

    def __init__(self, pidfile: str | None) -> None:
        self.path = state_path(pidfile) if pidfile else None
        self.seq = 0
        self.failure = ""  # why the last reload failed; '' once one succeeded

    def started(self, generation: int) -> None:
        """The master runs (written at start, so a reload finds the file)."""
        self._write(state="started", generation=generation)

    def asked(self) -> None:
        """A HUP was taken (whatever comes of it)."""
        self.seq += 1

    def begun(self, generation: int) -> None:
        self._write(state="reloading", generation=generation)

    def done(self, generation: int) -> None:
        self.failure = ""
        self._write(state="done", generation=generation)

    def failed(self, reason: str, code: int, generation: int) -> None:
        self.failure = reason
        self._write(state="failed", generation=generation, code=code, reason=reason)

    def status(self) -> str:
        """What STATUS= says first while the last reload failed."""
        return f"last reload failed: {self.failure}; " if self.failure else ""

    def _write(self, **fields: Any) -> None:
        if self.path is None:
            return
        data = {"pid": os.getpid(), "seq": self.seq, **fields}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(OSError):  # a full disk must not stop the master
            temporary.write_text(json.dumps(data) + "\n")
            os.replace(temporary, self.path)

    def remove(self) -> None:
        """At exit: remove the file if it is still this master's."""
        if self.path is not None and (read_state(str(self.path)[:-len(SUFFIX)]) or {}).get(
                "pid") == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()
