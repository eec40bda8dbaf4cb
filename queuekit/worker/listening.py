"""Listening: waking the fetch loop on database notifications (PostgreSQL LISTEN/NOTIFY).

A notification of jobs due now wakes the fetch loop at once; one of jobs
due later (an enqueue with a future ``run_at``) wakes it when they fall due,
instead of up to ``poll_interval`` late.
Dialects without notifications return no listener and the thread ends at
once; the fetch loop polls every ``poll_interval`` on every dialect anyway.
The listener connects through ``Worker(listen_url=...)`` when given (behind a
transaction pooler LISTEN needs a direct connection), else through the
manager's engine; ``Worker(listen=False)`` only polls.
"""

from __future__ import annotations

import heapq
import time

from queuekit.worker.fetching import MAX_BACKOFF, MIN_BACKOFF
from queuekit.worker.reporting import Role

#: How often the listener thread checks whether it should stop.
LISTEN_TICK = 0.5
#: Most future wake-ups remembered; beyond them, later jobs are found by polling.
MAX_WAKE_UPS = 1000
#: Margin after a job's run_at before waking, so that the database sees it due.
WAKE_MARGIN = 0.002


class WakeUps:
    """Times (``time.monotonic()``) at which jobs announced for later fall due."""

    def __init__(self) -> None:
        self._times: list[float] = []

    def add(self, moment: float) -> None:
        """Remember ``moment``; when full, the soonest are kept (polling finds the others)."""
        if len(self._times) < MAX_WAKE_UPS:
            heapq.heappush(self._times, moment)
            return
        latest = max(range(len(self._times)), key=self._times.__getitem__)
        if moment < self._times[latest]:
            self._times[latest] = moment
            heapq.heapify(self._times)

    def wait_limit(self, now: float, tick: float) -> float:
        """How long to wait for notifications before the next wake-up is due (at most ``tick``)."""
        if not self._times:
            return tick
        return max(0.0, min(tick, self._times[0] - now))

    def take_due(self, now: float) -> bool:
        """Forget the wake-ups due by ``now``; True when there was one."""
        due = False
        while self._times and self._times[0] <= now:
            heapq.heappop(self._times)
            due = True
        return due


class Listener(Role):
    """Turns enqueue notifications into fetch wake-ups, reconnecting after errors."""

    def loop(self) -> None:
        """Listen until the background threads are told to stop."""
        state = self.state
        settings = state.settings
        engine = settings.listen_engine
        if engine is None:
            return
        stop = state.background_stop
        backoff = MIN_BACKOFF
        while not stop.is_set():
            try:
                listener = settings.manager.dialect.open_listener(engine)
            except Exception as error:
                self.reporter.bookkeeping_error("listen", error)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if listener is None:
                return
            backoff = MIN_BACKOFF
            state.nudge()  # notifications sent while not listening are lost
            wake_ups = WakeUps()  # jobs announced for later are found by polls after a reconnect
            try:
                while not stop.is_set():
                    arrived = listener.wait(wake_ups.wait_limit(time.monotonic(), LISTEN_TICK))
                    now = time.monotonic()
                    for due_in in arrived:
                        if due_in > 0:
                            wake_ups.add(now + due_in + WAKE_MARGIN)
                    if wake_ups.take_due(now) or any(due_in <= 0 for due_in in arrived):
                        state.nudge()
            except Exception as error:
                self.reporter.bookkeeping_error("listen", error)  # reconnects; polling meanwhile
            finally:
                listener.close()


__all__ = ["LISTEN_TICK", "Listener", "WakeUps"]
