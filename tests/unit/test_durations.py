"""Durations and times as the public API accepts them, parsed without a database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from queuekit.durations import (
    MAX_DURATION_SECONDS,
    check_optional_time,
    check_time,
    duration_ms,
    parse_duration,
)
from queuekit.errors import InvalidArgumentError

WELL_FORMED: list[tuple[Any, timedelta]] = [
    ("30 seconds", timedelta(seconds=30)),
    ("1 second", timedelta(seconds=1)),
    ("1 minute", timedelta(minutes=1)),
    ("1 hour 30 minutes", timedelta(minutes=90)),
    ("1.5 days", timedelta(hours=36)),
    (".5 seconds", timedelta(milliseconds=500)),
    ("2 Weeks", timedelta(weeks=2)),
    ("  3 HOURS  ", timedelta(hours=3)),
    ("1hour", timedelta(hours=1)),
    ("5m", timedelta(minutes=5)),
    ("1h", timedelta(hours=1)),
    ("90s", timedelta(seconds=90)),
    ("1h30m", timedelta(minutes=90)),
    ("2 hrs 5 mins", timedelta(minutes=125)),
    ("PT5M", timedelta(minutes=5)),
    ("P1DT12H", timedelta(hours=36)),
    ("P2W", timedelta(weeks=2)),
    ("pt1.5s", timedelta(seconds=1.5)),
    (45, timedelta(seconds=45)),
    (0.25, timedelta(milliseconds=250)),
    (timedelta(minutes=3), timedelta(minutes=3)),
    (0, timedelta(0)),
]
MALFORMED: list[Any] = [
    "5 parsecs",
    "",
    "   ",
    "-1 second",
    "1 second 2",
    "second",
    "1 seconds and 2 minutes",
    "1,5 hours",
    "nan seconds",
    -1,
    -0.5,
    math.nan,
    math.inf,
    timedelta(seconds=-1),
    1e20,
    "99999999999 weeks",
    "1000000 weeks",
    timedelta.max,
    True,
    None,
    [1],
]


@pytest.mark.parametrize(("value", "expected"), WELL_FORMED, ids=repr)
def test_well_formed_durations(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", MALFORMED, ids=repr)
def test_malformed_durations_are_refused_with_the_argument_name(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="lock_timeout"):
        parse_duration(value, name="lock_timeout")


def test_malformed_string_says_how_to_write_one() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'1 hour 30 minutes'"):
        parse_duration("soon")


@pytest.mark.parametrize("zero", [0, 0.0, "0 seconds", timedelta(0), "0 minutes 0 seconds"])
def test_zero_is_refused_only_when_asked(zero: Any) -> None:
    assert parse_duration(zero) == timedelta(0)
    with pytest.raises(InvalidArgumentError, match="greater than zero"):
        parse_duration(zero, allow_zero=False)


def test_the_longest_duration_is_one_hundred_years() -> None:
    assert parse_duration(MAX_DURATION_SECONDS) == timedelta(seconds=MAX_DURATION_SECONDS)
    with pytest.raises(InvalidArgumentError, match="100 years"):
        parse_duration(MAX_DURATION_SECONDS + 1)


@pytest.mark.parametrize(
    ("value", "ms"),
    [("1 second", 1000), (0.0005, 0), (0.0015, 2), ("2 minutes", 120_000), (timedelta(0), 0)],
)
def test_duration_ms_rounds_to_whole_milliseconds(value: Any, ms: int) -> None:
    assert duration_ms(value) == ms


def test_times_must_be_aware_and_come_back_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    moment = datetime(2030, 1, 1, 14, 0, tzinfo=paris)
    assert check_time(moment, name="run_at") == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert check_time(moment, name="run_at").tzinfo is UTC
    with pytest.raises(InvalidArgumentError, match=r"run_at must be timezone-aware"):
        check_time(datetime(2030, 1, 1), name="run_at")
    with pytest.raises(InvalidArgumentError, match="not str"):
        check_time("2030-01-01T00:00:00Z", name="run_at")
    assert check_optional_time(None, name="run_at") is None
    assert check_optional_time(moment, name="run_at") == moment
