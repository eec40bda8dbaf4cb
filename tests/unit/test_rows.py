"""Turning result rows into the public value types, with hand-made rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from queuekit.rows import (
    job_from_row,
    job_queue_from_row,
    job_status,
    rate_limit_from_row,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def row(**values: Any) -> Any:
    """An object shaped like a SQLAlchemy Row (the converters read ``_mapping``)."""
    return SimpleNamespace(_mapping=values)


def job_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "task_identifier": "mail",
        "payload": {"to": "ada"},
        "priority": 0,
        "queue_name": None,
        "run_at": NOW,
        "attempts": 0,
        "max_attempts": 25,
        "last_error": None,
        "created_at": NOW,
        "updated_at": NOW,
        "job_key": None,
        "job_key_mode": None,
        "flags": None,
        "locked_at": None,
        "locked_by": None,
        "revision": 0,
        "rate_limit_key": None,
        "correlation_id": uuid.uuid4(),
    }
    return {**values, **changes}


@pytest.mark.parametrize(
    ("locked_at", "attempts", "max_attempts", "status"),
    [
        (None, 0, 1, "available"),
        (None, 2, 3, "available"),
        (None, 3, 3, "exhausted"),
        (None, 4, 3, "exhausted"),
        (NOW, 3, 3, "locked"),
        (NOW, 0, 3, "locked"),
    ],
)
def test_status_is_locked_else_exhausted_else_available(
    locked_at: datetime | None, attempts: int, max_attempts: int, status: str
) -> None:
    assert job_status(locked_at, attempts, max_attempts) == status
    assert (
        job_from_row(
            row(**job_values(locked_at=locked_at, attempts=attempts, max_attempts=max_attempts))
        ).status
        == status
    )


def test_a_job_row_keeps_its_correlation_id_only_for_a_fresh_claim() -> None:
    values = job_values(flags=["a", "b"], locked_at=NOW, locked_by="w")
    plain = job_from_row(row(**values))
    claimed = job_from_row(row(**values), with_correlation=True)
    assert plain.correlation_id is None
    assert claimed.correlation_id == values["correlation_id"]
    assert plain.flags == ("a", "b") and job_from_row(row(**job_values())).flags == ()
    assert (plain.id, plain.payload, plain.locked_by) == (values["id"], {"to": "ada"}, "w")


def test_rate_limit_interval_comes_back_as_a_timedelta() -> None:
    limit = rate_limit_from_row(
        row(
            key="k",
            capacity=3,
            interval_ms=1500,
            available_tokens=2,
            last_refill_at=NOW,
            next_refill_at=NOW + timedelta(seconds=1.5),
        )
    )
    assert limit.interval == timedelta(milliseconds=1500)
    assert (limit.key, limit.capacity, limit.available_tokens) == ("k", 3, 2)


@pytest.mark.parametrize(("counted", "expected"), [(None, 0), (0, 0), (4, 4), ("7", 7)])
def test_queue_job_count_is_an_int(counted: Any, expected: int) -> None:
    queue = job_queue_from_row(
        row(queue_name="q", locked_at=None, locked_by=None, job_count=counted)
    )
    assert queue.job_count == expected
