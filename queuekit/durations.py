"""Parsing of the durations and times that the public API accepts."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from queuekit.errors import InvalidArgumentError

Duration = timedelta | int | float | str

#: The longest duration accepted anywhere (100 years).
MAX_DURATION_SECONDS = 100 * 365.25 * 86400

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
# A unit is spelled out (singular or plural) or short: s/sec, m/min, h/hr, d, w. Units
# differ in their first letter, which is what counts. "m" is minutes, never months.
_UNIT = r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)(?![a-z])"
_GROUP = re.compile(rf"\s*{_NUMBER}\s*{_UNIT}\s*,?", re.IGNORECASE)
# ISO 8601 durations in weeks, days, hours, minutes and seconds (PT5M, P1DT12H, P2W).
_ISO = re.compile(
    rf"P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?",
    re.IGNORECASE,
)
_ISO_UNITS = (604800.0, 86400.0, 3600.0, 60.0, 1.0)
_FORMS = (
    "write one or more '<number> <unit>' groups, unit one of second, minute, hour, day, "
    "week or short s, m, h, d, w (e.g. '1 hour 30 minutes', '90s', '5m', '1h30m'), "
    "or an ISO 8601 duration (e.g. 'PT5M', 'P1DT12H')"
)


def parse_duration(value: object, *, name: str = "duration", allow_zero: bool = True) -> timedelta:
    """Return ``value`` as a timedelta.

    Accepts a timedelta, a number of seconds, or a string: ``<number> <unit>``
    groups such as ``"1 hour 30 minutes"``, their short forms (``"90s"``,
    ``"5m"``, ``"1h30m"``), or an ISO 8601 duration without years or months
    (``"PT5M"``, ``"P1DT12H"``, ``"P2W"``). Raises InvalidArgumentError for
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
    stripped = text.strip()
    if not stripped:
        raise InvalidArgumentError(f"{name} is empty; {_FORMS}")
    if stripped[0] in "pP":
        return _parse_iso_duration(stripped, text, name)
    position = 0
    total = 0.0
    while position < len(stripped):
        match = _GROUP.match(stripped, position)
        if match is None or match.end() == position:
            raise InvalidArgumentError(f"malformed {name} {text!r}: {_FORMS}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]
        position = match.end()
    return total


def _parse_iso_duration(stripped: str, text: str, name: str) -> float:
    match = _ISO.fullmatch(stripped)
    parts = match.groups() if match else ()
    if match is None or all(part is None for part in parts) or stripped.upper().endswith("T"):
        if re.match(r"P[\d.]*(?:Y|[\d.]+M)", stripped, re.IGNORECASE):
            raise InvalidArgumentError(
                f"{name} {text!r}: years and months have no fixed length; "
                "give days or weeks instead (e.g. 'P30D')"
            )
        raise InvalidArgumentError(f"malformed {name} {text!r}: {_FORMS}")
    return sum(float(part) * unit for part, unit in zip(parts, _ISO_UNITS, strict=True) if part)


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
