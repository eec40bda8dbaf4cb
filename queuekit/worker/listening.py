"""Listening: waking the fetch loop on database notifications (PostgreSQL LISTEN/NOTIFY).

Dialects without notifications return no listener and the thread ends at
once; the fetch loop polls every ``poll_interval`` on every dialect anyway.
The listener connects through ``Worker(listen_url=...)`` when given (behind a
transaction pooler LISTEN needs a direct connection), else through the
manager's engine; ``Worker(listen=False)`` only polls.
"""

from __future__ import annotations

from queuekit.worker.fetching import MAX_BACKOFF, MIN_BACKOFF
from queuekit.worker.reporting import Role

#: How often the listener thread checks whether it should stop.
LISTEN_TICK = 0.5


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
            try:
                while not stop.is_set():
                    if listener.wait(LISTEN_TICK):
                        state.nudge()
            except Exception as error:
                self.reporter.bookkeeping_error("listen", error)  # reconnects; polling meanwhile
            finally:
                listener.close()


__all__ = ["LISTEN_TICK", "Listener"]
