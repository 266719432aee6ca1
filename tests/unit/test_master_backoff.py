"""Per-slot crash-loop backoff."""

from __future__ import annotations

from supervisor.master.backoff import SlotBackoff


def test_delays_double_up_to_the_cap() -> None:
    backoff = SlotBackoff(base=0.1, cap=30.0)
    delays = [backoff.record_exit(1, 0.0, healthy_for=0.0, failed=True) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 30.0
    assert delays == sorted(delays)


def test_slot_waits_until_its_delay_passed() -> None:
    backoff = SlotBackoff(base=1.0)
    backoff.record_exit(1, 10.0, healthy_for=0.0, failed=True)
    backoff.record_exit(1, 10.0, healthy_for=0.0, failed=True)  # 2 s
    assert not backoff.may_spawn(1, 11.9)
    assert backoff.may_spawn(1, 12.0)
    assert backoff.may_spawn(2, 10.0), "other slots are not affected"


def test_healthy_run_resets_and_clean_exit_does_not_wait() -> None:
    backoff = SlotBackoff(base=1.0, reset_after=10.0)
    for _ in range(3):
        backoff.record_exit(1, 0.0, healthy_for=0.0, failed=True)
    assert backoff.failures(1) == 3
    assert backoff.record_exit(1, 50.0, healthy_for=20.0, failed=True) == 1.0
    assert backoff.record_exit(1, 60.0, healthy_for=20.0, failed=False) == 0.0
    assert backoff.may_spawn(1, 60.0)
    assert backoff.failures(1) == 0
