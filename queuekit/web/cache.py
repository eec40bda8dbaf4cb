"""A small time-to-live cache shared by every open tab of one dashboard process.

Each page refresh asks for the same few query results; within ``ttl`` seconds
they come from here, so N open tabs cost one query per refresh interval
instead of N.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a query result is served from memory.
DEFAULT_TTL = 2.0
#: Entries kept at most; the oldest go first.
MAX_ENTRIES = 512


class ResultCache:
    """Results by key, each kept ``ttl`` seconds; concurrent misses of one key run once."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of ``key``, computing (once, under a per-key lock) when stale."""
        if self.ttl <= 0:
            return compute()
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            now = self.clock()
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.ttl:
                return entry[1]  # type: ignore[no-any-return]
            value = compute()
            with self._lock:
                self._entries[key] = (self.clock(), value)
                if len(self._entries) > MAX_ENTRIES:
                    oldest = min(self._entries, key=lambda k: self._entries[k][0])
                    del self._entries[oldest]
                    self._key_locks.pop(oldest, None)
            return value

    def clear(self) -> None:
        """Forget everything (after an action, so the operator sees its effect at once)."""
        with self._lock:
            self._entries.clear()
