"""The listener's memory of jobs announced for later (no database)."""

from __future__ import annotations

from queuekit.dialects.postgresql import _due_in
from queuekit.worker.listening import MAX_WAKE_UPS, WakeUps


def test_wake_ups_come_due_in_order_and_bound_the_wait() -> None:
    wake_ups = WakeUps()
    assert wake_ups.wait_limit(100.0, 0.5) == 0.5  # nothing remembered: the usual tick
    wake_ups.add(100.3)
    wake_ups.add(100.1)
    assert abs(wake_ups.wait_limit(100.0, 0.5) - 0.1) < 1e-9
    assert not wake_ups.take_due(100.05)
    assert wake_ups.take_due(100.2)
    assert abs(wake_ups.wait_limit(100.2, 0.5) - 0.1) < 1e-9
    assert wake_ups.wait_limit(101.0, 0.5) == 0.0  # overdue: do not wait
    assert wake_ups.take_due(101.0)
    assert not wake_ups.take_due(200.0)


def test_wake_ups_are_bounded() -> None:
    wake_ups = WakeUps()
    for n in range(MAX_WAKE_UPS + 10):
        wake_ups.add(float(n))
    assert wake_ups.take_due(float(MAX_WAKE_UPS - 1))  # every one kept is due by then
    assert not wake_ups.take_due(1e9)  # the ones past the bound were dropped, not kept


def test_a_full_memory_keeps_the_soonest_wake_ups() -> None:
    wake_ups = WakeUps()
    for n in range(MAX_WAKE_UPS):
        wake_ups.add(1e6 + n)  # jobs announced for far later fill it up
    wake_ups.add(5.0)  # then one due soon
    assert abs(wake_ups.wait_limit(0.0, 10.0) - 5.0) < 1e-9
    assert wake_ups.take_due(5.0)


def test_notification_payloads_read_as_seconds_until_due() -> None:
    assert _due_in("") == 0.0
    assert _due_in("12.5") == 12.5
    assert _due_in("-3") == 0.0
    assert _due_in("nan") == 0.0
    assert _due_in("inf") == 0.0  # a hostile NOTIFY must not park a wake-up forever
    assert _due_in("1e999") == 0.0
    assert _due_in("not a number") == 0.0
