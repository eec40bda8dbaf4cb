"""Parsing of the durations and times that the public API accepts."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from queuekit.errors import InvalidArgumentError

Duration = timedelta | int | float | str

#: The longest duration accepted anywhere (100 years).
MAX_DURATION_SECONDS = 100 * 365.25 * 86400

_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 604800.0}
_GROUP = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(second|minute|hour|day|week)s?\s*", re.IGNORECASE)


def parse_duration(value: object, *, name: str = "duration", allow_zero: bool = True) -> timedelta:
    """Return ``value`` as a timedelta.

    Accepts a timedelta, a number of seconds, or a string of ``<number> <unit>``
    groups such as ``"1 hour 30 minutes"``. Raises InvalidArgumentError for
    anything else, for negative durations, and for zero when not allowed.
    """
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a duration, not a bool")
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            raise InvalidArgumentError(f"{name} must be at most 100 years") from None
    elif isinstance(value, str):
        seconds = _parse_interval_string(value, name)
    else:
        raise InvalidArgumentError(
            f"{name} must be a timedelta, a number of seconds or a string like '5 minutes', "
            f"not {type(value).__name__}"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise InvalidArgumentError(f"{name} must be a finite duration")
    if seconds < 0:
        raise InvalidArgumentError(f"{name} must not be negative, got {value!r}")
    if seconds > MAX_DURATION_SECONDS:
        # Longer spans push database timestamps past year 9999, which no dialect stores.
        raise InvalidArgumentError(f"{name} must be at most 100 years, got {value!r}")
    if seconds == 0 and not allow_zero:
        raise InvalidArgumentError(f"{name} must be greater than zero")
    return timedelta(seconds=seconds)


def _parse_interval_string(text: str, name: str) -> float:
    position = 0
    total = 0.0
    stripped = text.strip()
    if not stripped:
        raise InvalidArgumentError(f"{name} is empty; write it like '30 seconds' or '1 hour'")
    while position < len(stripped):
        match = _GROUP.match(stripped, position)
        if match is None or match.end() == position:
            raise InvalidArgumentError(
                f"malformed {name} {text!r}: write one or more '<number> <unit>' groups, "
                "unit one of second, minute, hour, day, week (e.g. '1 hour 30 minutes')"
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    return total


def duration_ms(value: object, *, name: str = "duration", allow_zero: bool = True) -> int:
    """Return ``value`` parsed as a duration, in whole milliseconds.

    Durations are stored in milliseconds, so one that must not be zero is
    checked after rounding: ``0.0001`` seconds would be stored as zero.
    """
    ms = round(parse_duration(value, name=name, allow_zero=allow_zero).total_seconds() * 1000)
    if ms == 0 and not allow_zero:
        raise InvalidArgumentError(f"{name} must be at least 1 millisecond, got {value!r}")
    return ms


def check_time(value: object, *, name: str) -> datetime:
    """Return ``value`` as an aware UTC datetime, rejecting naive or non-datetime values."""
    if not isinstance(value, datetime):
        raise InvalidArgumentError(
            f"{name} must be a timezone-aware datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)); got a naive datetime"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. datetime.min with a positive offset: before year 1 in UTC
        raise InvalidArgumentError(
            f"{name} {value.isoformat()} is outside the years 1-9999 once converted to UTC"
        ) from None


def check_optional_time(value: object, *, name: str) -> datetime | None:
    """Like :func:`check_time`, but None passes through."""
    return None if value is None else check_time(value, name=name)
