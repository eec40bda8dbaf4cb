"""Events a worker emits, and the bus that delivers them to listeners.

Listeners run on a thread of their own, in emission order, so a slow or
failing listener never holds up a task slot, a claim or a flush. A
listener's exception is logged and goes no further.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from queuekit.errors import InvalidArgumentError

log = logging.getLogger("queuekit.events")

#: Every event name a worker emits.
EVENT_NAMES: tuple[str, ...] = (
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
)
#: Registering for this name receives every event.
ALL_EVENTS = "*"


@dataclass(frozen=True)
class Event:
    """Something that happened in a worker.

    ``data`` holds whichever apply of ``task_identifier``, ``job_id``,
    ``attempt``, ``queue_name``, ``worker_id`` and ``error`` (plus a few
    event-specific keys, such as ``concurrency`` on ``pool/start``).
    ``emitted_at`` is the local wall-clock time, in seconds since the epoch.
    """

    name: str
    data: dict[str, Any]
    emitted_at: float = field(default_factory=time.time)


Listener = Callable[[Event], object]


class EventBus:
    """Routes events to the listeners registered for their name (or for ``"*"``)."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._queue: deque[Event] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False

    def on(self, name: str, listener: Listener) -> None:
        """Call ``listener(event)`` for every event called ``name`` (``"*"``: all events)."""
        if name != ALL_EVENTS and name not in EVENT_NAMES:
            raise InvalidArgumentError(
                f"unknown event name {name!r}; use one of {', '.join(EVENT_NAMES)} or '*'"
            )
        if not callable(listener):
            raise InvalidArgumentError("an event listener must be callable")
        with self._condition:
            self._listeners.setdefault(name, []).append(listener)

    @property
    def delivery_thread(self) -> threading.Thread | None:
        """The thread listeners run on, while it exists."""
        return self._thread

    def wants(self, name: str) -> bool:
        """Whether anyone listens to ``name``; lets hot paths skip building event data."""
        return bool(self._listeners.get(name) or self._listeners.get(ALL_EVENTS))

    def emit(self, name: str, data: dict[str, Any]) -> None:
        """Queue an event for delivery; returns at once."""
        if not self.wants(name):
            return
        with self._condition:
            self._queue.append(Event(name, data))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="queuekit-events", daemon=True
                )
                self._thread.start()
            self._condition.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was delivered; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def _deliver_forever(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    # An idle delivery thread ends; the next emit starts another.
                    if not self._condition.wait(30.0) and not self._queue:
                        self._thread = None
                        return
                event = self._queue.popleft()
                self._busy = True
                listeners = [*self._listeners.get(event.name, ()), *self._listeners.get("*", ())]
            try:
                for listener in listeners:
                    try:
                        listener(event)
                    except Exception:
                        log.exception("event listener %r failed on %s", listener, event.name)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


__all__ = ["ALL_EVENTS", "EVENT_NAMES", "Event", "EventBus"]
