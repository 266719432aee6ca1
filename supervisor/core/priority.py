"""Job priorities within a queue: 0-9, higher runs first, 0 by default.

Pure: the check of a priority given by a user, and where a message carries it.
The level of a job travels in its message as the key right after the schema
version (`{"v":1,"pr":9,...}`), absent at 0, so the broker (and the Lua
scripts that move messages, promote.lua) can tell a message's level from its
first bytes without decoding it: a job without a priority costs nothing.
"""

from __future__ import annotations

MAX_PRIORITY = 9
LEVELS = tuple(range(MAX_PRIORITY + 1))  # 0..9, each level its own stream (broker/levels.py)
# What a message of level N begins with (core/job.py encode writes it so).
MARK = '{"v":1,"pr":'


def check_priority(value: object, what: str = "priority") -> int:
    """`value` as a priority 0-9; ValueError saying what is allowed otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise ValueError(f"{what} must be an integer from 0 to {MAX_PRIORITY} (higher runs "
                         f"first, default 0), got {value!r}")
    return value


def effective_priority(given: object, task: object) -> int:
    """A job's priority as apply_async decides it: the one given (apply_async(priority=),
    a signature's .set(priority=)), else its task's (0 for a task without priorities);
    checked either way."""
    if given is None:
        given = getattr(task, "priority", 0)
    return check_priority(given) if given else 0


def level_of(message: str | bytes) -> int:
    """The priority level of a job message (0 when it carries none, or is not ours)."""
    if isinstance(message, bytes):
        message = message[:16].decode("utf-8", "replace")
    if not message.startswith(MARK):
        return 0
    digit = message[len(MARK):len(MARK) + 1]
    return int(digit) if digit.isdigit() else 0
