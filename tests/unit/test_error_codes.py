"""Which error replies speak of the server's state (worth sending again), which of the command."""

from __future__ import annotations

import pytest
import redis

from supervisor.broker import refusals
from supervisor.broker.error_codes import WRITE_REFUSED_CODES, refused_for_now


@pytest.mark.parametrize("exc", [
    redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
    redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
    redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write."),
    redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
    redis.exceptions.ResponseError("TRYAGAIN Multiple keys request during rehashing"),
    redis.exceptions.ResponseError("CLUSTERDOWN The cluster is down"),
])
def test_the_servers_state_is_refused_for_now(exc: BaseException) -> None:
    assert refused_for_now(exc)


@pytest.mark.parametrize("exc", [
    redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
    redis.exceptions.ResponseError("ERR bad forward op"),
    ValueError("not json"),
])
def test_what_is_wrong_with_the_command_is_not(exc: BaseException) -> None:
    assert not refused_for_now(exc)


def test_every_write_refusal_has_its_words_for_the_operator() -> None:
    assert set(refusals._WRITE_REFUSED) == WRITE_REFUSED_CODES
