"""Which error replies of Redis speak of the server's state rather than of the command.

The first word of an error reply is its code. A few codes say "not now" (the
server is full, read-only, failing over, loading): the same command is
worth sending again later. Apart from `refusals.py` (which words them for an
operator) so that the modules applying writes can ask without importing what
refusals needs to probe a server.
"""

from __future__ import annotations

import redis

# A server that is up but refuses writes for now (refusals.py says what to do).
WRITE_REFUSED_CODES = frozenset({"OOM", "MISCONF", "NOREPLICAS", "READONLY"})

# Refusals a failover produces for a moment: the next try (after the topology
# is looked up again) goes to the new master.
FAILOVER_CODES = frozenset({"READONLY", "NOREPLICAS", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
                            "LOADING"})


def code_of(exc: BaseException) -> str:
    """The code of an error reply (its first word), as redis-py's classes or text give it."""
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "OOM"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "READONLY"
    return str(exc).split(" ", 1)[0]


def during_failover(exc: BaseException) -> bool:
    """An error reply a failover or resharding gives for a moment (worth waiting out)."""
    return isinstance(exc, redis.exceptions.ResponseError) and code_of(exc) in FAILOVER_CODES


def refused_for_now(exc: BaseException) -> bool:
    """An error reply that says nothing of the command sent, only of the server's state
    (full, failing its snapshot, read-only, failing over, loading): the same command is
    worth sending again later (a worker rides these out), never worth setting aside."""
    if not isinstance(exc, redis.exceptions.ResponseError):
        return False
    code = code_of(exc)
    return code in WRITE_REFUSED_CODES or code in FAILOVER_CODES
