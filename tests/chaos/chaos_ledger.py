"""Reading the ledger the chaos task writes: every execution of every job."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos_events import Event
from chaos_tasks import execution_key


@dataclass(frozen=True, slots=True)
class Execution:
    job_id: str
    node: str
    pid: int
    start: float
    end: float | None  # None: the work never finished (killed, or cut off)


def executions(ledger: Any, job_ids: list[str], chunk: int = 1000) -> dict[str, list[Execution]]:
    """Job id -> its executions in start order ([] for a job that never ran)."""
    found: dict[str, list[Execution]] = {}
    for at in range(0, len(job_ids), chunk):
        part = job_ids[at:at + chunk]
        pipe = ledger.pipeline(transaction=False)
        for job_id in part:
            pipe.lrange(execution_key(job_id), 0, -1)
        for job_id, lines in zip(part, pipe.execute(), strict=True):
            found[job_id] = _parse(job_id, lines)
    return found


def _parse(job_id: str, lines: list[str]) -> list[Execution]:
    starts: dict[tuple[str, str, str], Execution] = {}
    ends: dict[tuple[str, str, str], float] = {}
    for line in lines:
        kind, *fields = line.split()
        key = (fields[0], fields[1], fields[2])
        if kind == "S":
            starts[key] = Execution(job_id, fields[1], int(fields[2]), float(fields[0]), None)
        else:
            ends[key] = float(fields[3])
    runs = [Execution(e.job_id, e.node, e.pid, e.start, ends.get(key))
            for key, e in starts.items()]
    return sorted(runs, key=lambda e: e.start)


_FAILED_LINE = re.compile(r"attempt \d+ failed")
_KILL_LINE = re.compile(r"is hung|did not exit in time: SIGKILL|ran past its timeout: SIGKILL")
_PID = re.compile(r"\(pid (\d+)\)")


def log_records(log_path: Path) -> Iterator[dict[str, Any]]:
    """The JSON records of a node's log (--log-format json), other lines skipped."""
    if not log_path.exists():
        return
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def master_kills(log_path: Path, node: str) -> list[Event]:
    """Kills a master did on its own (hung child, overdue stop, hard time limit), from its log."""
    found: list[Event] = []
    for record in log_records(log_path):
        message = str(record.get("message", ""))
        pid = _PID.search(message)
        if _KILL_LINE.search(message) and pid:
            at = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00")).timestamp()
            # a hung child gets SIGABRT, then SIGKILL 2 s later: the window covers both
            found.append(Event("master_kill", at, at + 3.0, node, int(pid.group(1)),
                               detail=message))
    return found


def never_served(log_path: Path, master_pid: int) -> bool:
    """Whether that master said it stopped before any of its workers served (Redis never
    answered them: its exit code is then EXIT_REDIS_UNAVAILABLE, not 0, by design)."""
    return any(record.get("pid") == master_pid
               and str(record.get("message", "")).startswith("stopped before any worker served")
               for record in log_records(log_path))


def evidence(log_paths: list[Path], job_id: str, pid: int, limit: int = 40) -> list[str]:
    """The node log lines about an unexplained duplicate: those naming the job, and those
    of the process that ran it first or naming that process (its master's lines), so a
    failed run on CI says what that process did without its logs."""
    pid_mark = re.compile(rf"\b{pid}\b")
    found: list[tuple[str, str]] = []
    for path in log_paths:
        for record in log_records(path):
            message = str(record.get("message", ""))
            if job_id in message or record.get("pid") == pid or pid_mark.search(message):
                found.append((str(record.get("time", "")),
                              f"{record.get('node', '?')} {record.get('pid', '?')} "
                              f"{record.get('level', '?')}: {message[:300]}"))
    found.sort()
    return [f"  {at} {text}" for at, text in found[-limit:]]


def failed_attempts(log_paths: list[Path]) -> list[str]:
    """Every attempt the nodes logged as failed. The chaos task never raises and a kill
    logs no failure, so each one is a defect (of ours, or of the ledger the task
    writes to), and its retry would read as a duplicate no fault explains."""
    found: list[str] = []
    for path in log_paths:
        if path.exists():
            found += [f"{path.stem}: {line[:300]}" for line in
                      path.read_text(errors="replace").splitlines()
                      if _FAILED_LINE.search(line)]
    return found
