"""Priorities: the check of user input, and where the message carries the level."""

from __future__ import annotations

import pytest

from supervisor import task
from supervisor.core.job import Job, decode
from supervisor.core.priority import check_priority, level_of
from supervisor.errors import InvalidMessage


@pytest.mark.parametrize("value", [0, 5, 9])
def test_priorities_0_to_9_are_accepted(value: int) -> None:
    assert check_priority(value) == value


@pytest.mark.parametrize("value", [-1, 10, 2.5, "9", True, None])
def test_other_priorities_are_refused_saying_what_is_allowed(value: object) -> None:
    with pytest.raises(ValueError, match="must be an integer from 0 to 9"):
        check_priority(value)


def test_the_level_is_the_message_s_first_key_and_survives_a_retry() -> None:
    job = Job(id="j", task="t", queue="q", priority=7, kwargs={"pr": 3})
    text = job.encode()
    assert text.startswith('{"v":1,"pr":7,')
    assert level_of(text) == 7
    assert decode(text).priority == 7
    assert decode(decode(text).next_attempt({}).encode()).priority == 7
    plain = Job(id="j", task="t", queue="q", kwargs={"pr": 3}).encode()
    assert level_of(plain) == 0 and '"pr":3' in plain  # a kwarg named pr is not a level
    assert decode(plain).priority == 0


def test_a_message_with_a_bad_priority_is_invalid() -> None:
    text = Job(id="j", task="t", queue="q", priority=7).encode().replace('"pr":7', '"pr":12')
    with pytest.raises(InvalidMessage, match="priority"):
        decode(text)


def test_a_task_with_a_bad_priority_is_refused_at_definition() -> None:
    with pytest.raises(ValueError, match="priority of task .*must be an integer from 0 to 9"):
        @task(priority=10)
        def urgent() -> None: ...


def test_a_signature_takes_its_own_priority() -> None:
    @task(name="tests.unit.prio_sig", priority=2)
    def sig_task() -> None: ...

    assert sig_task.s().priority is None
    assert sig_task.s().set(priority=9).priority == 9
    with pytest.raises(ValueError):
        sig_task.s().set(priority=11)


def test_a_periodic_task_s_ticks_take_the_task_s_priority() -> None:
    from supervisor.api.periodic import resolve
    from supervisor.config import Config
    from supervisor.core.schedule import Schedule

    @task(name="tests.unit.prio_periodic", queue="reports", priority=6)
    def nightly() -> None: ...

    entry = resolve(Schedule(name="n", task="tests.unit.prio_periodic", every=60), Config())
    assert (entry.queue, entry.priority) == ("reports", 6)
