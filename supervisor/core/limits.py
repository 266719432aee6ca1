"""Flow-control options of a task, pure: rate limits, concurrency limits, unique keys.

Parsing and naming only; what Redis does with them is broker/limits.py's
(and the scripts limit_take.lua, enqueue.lua, settle.lua, handback.lua).

A limit is named after its task, and after the task and its `limit_key`
when one is given ("reports.build[tenant-7]"): that name is the field of
the queue's limit hashes, so every node counts one limit together.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.core import jsonio

_PERIODS = {"s": 1000, "m": 60_000, "h": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
MAX_KEY = 200  # a longer limit or unique key is hashed (it is part of a hash field or key name)

# Outcomes of the take gate for one job (limit_take.lua's reply).
WAIT_RATE = "rate"  # over its rate limit: in the delayed set until its turn
WAIT_CONCURRENCY = "concurrency"  # its concurrency limit is full: waits for a slot to free


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` starts per `period_ms`: one turn every `interval_ms`."""

    count: int
    period_ms: int

    @property
    def interval_ms(self) -> float:
        return self.period_ms / self.count

    @property
    def burst(self) -> int:
        """Turns that may be taken at once: a tenth of the count, at least 1 (README). So a
        fetched batch of a generous limit starts together instead of a job per turn, and
        any window of the period still sees at most count + burst starts."""
        return max(1, self.count // 10)

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIODS.items()}.get(self.period_ms)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.period_ms}ms"


def parse_rate(text: str) -> Rate:
    """"50/s", "100/m", "1000/h" (also "5/10s": 5 per 10 seconds); ValueError saying what
    is accepted otherwise."""
    found = _RATE.match(text) if isinstance(text, str) else None
    if not found or int(found.group(1)) <= 0:
        raise ValueError(f"rate_limit {text!r} is not a rate: write COUNT/PERIOD with a "
                         "positive COUNT and PERIOD s, m or h (e.g. '50/s', '100/m', '5/10s')")
    many = int(found.group(2)) if found.group(2) else 1
    if many <= 0:
        raise ValueError(f"rate_limit {text!r}: the period must be positive")
    return Rate(int(found.group(1)), many * _PERIODS[found.group(3)])


@dataclass(frozen=True, slots=True)
class Limits:
    """The flow control of one task (None: that limit is not set)."""

    rate: Rate | None = None
    concurrency: int | None = None
    limit_key: Callable[..., Any] | None = None

    @property
    def active(self) -> bool:
        return self.rate is not None or self.concurrency is not None


def make_limits(task: str, rate_limit: str | None, concurrency_limit: int | None,
                limit_key: Callable[..., Any] | None) -> Limits | None:
    """The checked Limits of a task (None when it has none); ValueError on bad options."""
    if concurrency_limit is not None and (isinstance(concurrency_limit, bool)
                                          or not isinstance(concurrency_limit, int)
                                          or concurrency_limit <= 0):
        raise ValueError(f"concurrency_limit of task {task} must be a positive int, "
                         f"got {concurrency_limit!r}")
    if limit_key is not None and not callable(limit_key):
        raise ValueError(f"limit_key of task {task} must be a callable(*args, **kwargs) -> str")
    rate = parse_rate(rate_limit) if rate_limit is not None else None
    if rate is None and concurrency_limit is None:
        if limit_key is not None:
            raise ValueError(f"limit_key of task {task} needs rate_limit= or "
                             "concurrency_limit= (it says per what key they count)")
        return None
    return Limits(rate, concurrency_limit, limit_key)


def _safe(key: str) -> str:
    """A key as a hash field or key part: short and without newlines (the waiting set
    separates its parts with newlines), else its digest."""
    if len(key) <= MAX_KEY and "\n" not in key:
        return key
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()


def limit_name(task: str, limits: Limits, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> str:
    """The name the job's limits count under: the task's, or "task[key]" per limit_key.

    A limit_key that raises or returns a non-string is a bug of the task's
    code: ValueError saying so (the worker logs it and counts the job under the
    task's own name: limited, never unlimited).
    """
    if limits.limit_key is None:
        return _safe(task)
    try:
        key = limits.limit_key(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported alike
        raise ValueError(f"limit_key of {task} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(key, str):
        raise ValueError(f"limit_key of {task} returned {type(key).__name__}, not str")
    return _safe(f"{task}[{key}]")


def unique_digest(task: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                  unique_key: Callable[..., Any] | None) -> str:
    """The digest two equal jobs share: of the task name and unique_key(*args, **kwargs),
    or of the canonical JSON of the arguments (sorted keys: {"a": 1, "b": 2} and
    {"b": 2, "a": 1} are equal)."""
    if unique_key is not None:
        key = unique_key(*args, **kwargs)
        if not isinstance(key, str):
            raise ValueError(f"unique_key of {task} returned {type(key).__name__}, not str")
        text = f"{task}\n{key}"
    else:
        try:
            text = f"{task}\n" + jsonio.dumps_sorted([list(args), kwargs])
        except TypeError as exc:
            raise ValueError(f"arguments of {task} are not JSON-serialisable: {exc}; pass "
                             "plain data (str, int, float, bool, None, list, dict)") from None
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def check_unique(task: str, unique: bool, unique_for: float | None,
                 unique_key: Callable[..., Any] | None) -> int | None:
    """The lock lifetime in seconds a unique task asked for (0: the result TTL), None when
    the task is not unique; ValueError on bad options."""
    if unique_for is not None:
        if isinstance(unique_for, bool) or not isinstance(unique_for, (int, float)) \
                or unique_for <= 0:
            raise ValueError(f"unique_for of task {task} must be positive seconds, "
                             f"got {unique_for!r}")
        return max(1, int(-(-unique_for // 1)))
    if unique_key is not None and not callable(unique_key):
        raise ValueError(f"unique_key of task {task} must be a callable(*args, **kwargs) "
                         "-> str")
    if unique or unique_key is not None:
        return 0
    return None
