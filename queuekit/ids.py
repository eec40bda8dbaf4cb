"""Time-ordered UUIDs (version 7), so that new rows land at the end of their indexes."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
#: Random bytes read from the OS a page at a time: one system call per 512 ids, not one each.
_RANDOM_CHUNK = 4096
_random = b""
_random_at = 0


def _forget_random() -> None:
    """A forked child must not reuse its parent's unread random bytes (ids would repeat)."""
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def _random_bytes(count: int) -> bytes:
    """``count`` bytes from the OS's random source (call with ``_lock`` held)."""
    global _random, _random_at
    if _random_at + count > len(_random):
        _random, _random_at = os.urandom(_RANDOM_CHUNK), 0
    start = _random_at
    _random_at += count
    return _random[start:_random_at]


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then a counter and random bits.

    Ids made by one process in the same millisecond stay ordered thanks to the
    12-bit counter seeded randomly each millisecond.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(_random_bytes(2), "big") & 0x07FF
        else:
            _counter += 1
            if _counter > 0x0FFF:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
        rand = int.from_bytes(_random_bytes(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return uuid.UUID(int=value)
