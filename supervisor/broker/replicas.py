"""--wait-replicas: WAIT after a write, in the same round trip and on the same connection.

WAIT counts the replicas that took the writes of *its own connection*, so it
is sent right behind the write (one pipelined round trip): on a cluster, to
every node the batch wrote to (cluster.ClusterCommands.call_many).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError


class NotReplicated(redis.exceptions.TimeoutError):
    """WAIT saw fewer replicas take a write than asked (--wait-replicas): try it again.

    A TimeoutError, so every caller's retry treats it as an outage: the write
    is idempotent (enqueue by job id, settle of entries still pending), and
    the next try waits for the replicas again.
    """


def run_and_wait(direct: Any, script: Any, command: Sequence[Any],
                 wait: tuple[str, int, int]) -> Any:
    """Run a script's EVALSHA (direct.DirectScript) followed by `wait` ("WAIT", n, ms)."""
    reply, acked = direct.call_many([command, wait])
    if isinstance(reply, NoScriptError):
        script.load()
        reply, acked = direct.call_many([command, wait])
    if isinstance(reply, redis.exceptions.ResponseError):
        raise reply
    check(acked, wait)
    return reply


def fewest(first: Any, second: Any) -> Any:
    """Two WAIT replies of one write (the first try's, the resend's): the fewer replicas,
    or the error."""
    if isinstance(first, int) and isinstance(second, int):
        return min(first, second)
    return second if not isinstance(first, int) or isinstance(second, BaseException) else first


def check(acked: Any, wait: tuple[str, int, int]) -> None:
    """Raise NotReplicated when fewer replicas than asked took the writes (or the error)."""
    if isinstance(acked, redis.exceptions.ResponseError):
        raise acked
    if int(acked) < wait[1]:
        raise NotReplicated(f"{acked} of {wait[1]} replicas took the write within "
                            f"{wait[2]} ms (--wait-replicas)")
