"""A database clock tests can move, through the dialect seam's test-only hook.

``DialectSupport.clock_offset_ms`` adds an offset to every reading of the
database clock a JobManager makes (each ``now()`` in its statements, and
``manager.now()``). Tests move that clock forward instead of sleeping until a
lock, a retention or a backoff has passed. The offset is read at each
execution, so statements the repository builds once follow it too; install
the clock on a fresh manager, before its first statement.
"""

from __future__ import annotations

from datetime import timedelta

from queuekit import JobManager


class MovableClock:
    """How far a manager's database clock is moved (the hook calls it for the offset)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return self.offset_ms

    def advance(self, delta: timedelta = timedelta(milliseconds=10)) -> None:
        """Move the clock forward by ``delta`` (by default past SQLite's millisecond grain)."""
        self.offset_ms += round(delta.total_seconds() * 1000)

    def rewind(self, delta: timedelta) -> None:
        """Move the clock back by ``delta``: what this manager writes looks that much older."""
        self.offset_ms -= round(delta.total_seconds() * 1000)


def movable_clock(manager: JobManager) -> MovableClock:
    """Install a movable clock on ``manager`` (fresh, nothing run yet) and return it."""
    clock = MovableClock()
    manager.dialect.clock_offset_ms = clock
    return clock
