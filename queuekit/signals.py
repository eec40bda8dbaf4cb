"""Graceful stop on SIGINT and SIGTERM for long-running loops (worker, maintenance)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("queuekit")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals(on_stop: Callable[[bool], None]) -> Iterator[None]:
    """Call ``on_stop(force)`` on SIGINT/SIGTERM while the block runs, then restore handlers.

    The first signal asks for a graceful stop (``force`` False), a second one
    for an immediate stop (``force`` True). Handlers can only be installed
    from the main thread; elsewhere this does nothing, and the owner stops
    through its ``stop()`` method.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def handle(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            log.info("received %s: stopping gracefully (send it again to stop at once)", name)
        else:
            log.warning("received %s again: stopping at once", name)
        on_stop(received > 1)

    previous: dict[signal.Signals, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["stop_signals"]
