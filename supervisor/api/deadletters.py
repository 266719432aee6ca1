"""Acting on dead letters: requeue (one or many), filter, and the original message decoded.

Shared by `supervisor dead` (cli/dead.py) and the dashboard (ui/), so both
requeue and describe a dead letter the same way. Reading and deleting the
entries is broker/inspect.py's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from supervisor.broker.inspect import DeadLetter, delete_dead
from supervisor.errors import InvalidMessage


class Requeuer(Protocol):
    """What requeueing needs of a producer (api/producer.Producer has it)."""

    client: Any

    def requeue(self, message: str) -> str: ...


@dataclass
class RequeueReport:
    requeued: list[str] = field(default_factory=list)  # job ids
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job id or entry id, why)


def requeue_letters(producer: Requeuer, letters: Iterable[DeadLetter]) -> RequeueReport:
    """Enqueue each letter's original message again (fresh first attempt, same id), then
    delete the letter; a letter whose message cannot run is skipped and kept."""
    report = RequeueReport()
    for letter in letters:
        try:
            producer.requeue(str(letter.data.get("job", "")))
        except InvalidMessage as exc:
            report.skipped.append((letter.job_id or letter.entry_id, str(exc)))
            continue
        delete_dead(producer.client, letter)
        report.requeued.append(letter.job_id)
    return report


def matches(letter: DeadLetter, reason: str | None = None, task: str | None = None) -> bool:
    """Whether a letter passes the filters (None: any)."""
    data = letter.data
    return ((not reason or data.get("reason") == reason)
            and (not task or data.get("task") == task))


def original_message(data: dict[str, Any]) -> dict[str, Any] | None:
    """The job message a dead letter keeps (args, kwargs, host), or None if it is not one."""
    try:
        message = json.loads(str(data.get("job", "")))
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def summary(letter: DeadLetter) -> dict[str, Any]:
    """The letter without its traceback and original message (`dead list --json` rows)."""
    return {k: v for k, v in letter.data.items() if k != "traceback"}
