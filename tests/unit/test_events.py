"""The event bus: names, routing, ordering and failing listeners (no database, no worker)."""

from __future__ import annotations

import logging
import threading

import pytest

from queuekit.errors import InvalidArgumentError
from queuekit.events import ALL_EVENTS, EVENT_NAMES, Event, EventBus


def test_unknown_names_and_non_callables_are_refused() -> None:
    bus = EventBus()
    with pytest.raises(InvalidArgumentError, match="unknown event name 'job/finished'"):
        bus.on("job/finished", lambda _e: None)
    with pytest.raises(InvalidArgumentError, match="callable"):
        bus.on("job/completed", "not callable")  # type: ignore[arg-type]


def test_events_reach_their_listeners_in_order_on_another_thread() -> None:
    bus = EventBus()
    named: list[tuple[str, int]] = []
    everything: list[str] = []
    threads: set[str] = set()

    def on_completed(event: Event) -> None:
        named.append((event.name, event.data["n"]))
        threads.add(threading.current_thread().name)

    bus.on("job/completed", on_completed)
    bus.on(ALL_EVENTS, lambda event: everything.append(event.name))
    for n in range(50):
        bus.emit("job/completed", {"n": n})
    bus.emit("job/failed", {"n": -1})
    assert bus.flush(timeout=10)
    assert named == [("job/completed", n) for n in range(50)]
    assert everything == ["job/completed"] * 50 + ["job/failed"]
    assert threads == {"queuekit-events"}


def test_nobody_listening_means_nothing_is_queued() -> None:
    bus = EventBus()
    assert not bus.wants("job/completed")
    bus.emit("job/completed", {})
    assert bus.delivery_thread is None
    bus.on("job/failed", lambda _e: None)
    assert bus.wants("job/failed") and not bus.wants("job/completed")


def test_a_failing_listener_is_logged_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(_event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.on("worker/error", broken)
    bus.on("worker/error", lambda event: seen.append(event.name))
    with caplog.at_level(logging.ERROR, logger="queuekit.events"):
        bus.emit("worker/error", {"error": "x"})
        assert bus.flush(timeout=10)
    assert seen == ["worker/error"]
    assert "listener bug" in caplog.text


def test_flush_gives_up_after_its_timeout() -> None:
    bus = EventBus()
    release = threading.Event()
    bus.on("pool/start", lambda _e: release.wait(10))
    bus.emit("pool/start", {})
    try:
        assert bus.flush(timeout=0.05) is False
    finally:
        release.set()
    assert bus.flush(timeout=10)


def test_the_documented_event_names() -> None:
    assert set(EVENT_NAMES) == {
        "pool/start",
        "pool/stop",
        "job/claimed",
        "job/completed",
        "job/failed",
        "job/exhausted",
        "job/partial-success",
        "job/timeout",
        "job/lock-lost",
        "worker/error",
        "cron/fired",
    }
