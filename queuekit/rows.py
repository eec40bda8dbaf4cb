"""Conversion of result rows into the public value types.

Most fields of a value type are named after the column they are read from,
so each converter reads those by name (``_same_named``) and spells out only
the fields it computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from queuekit.models import job_status
from queuekit.types import (
    HistoryRecord,
    Job,
    JobQueue,
    RateLimit,
    TaskIdentifier,
    WorkerInfo,
)


def _same_named(value_type: type[Any], *computed: str) -> tuple[str, ...]:
    """The fields of ``value_type`` read from the column of the same name (all but ``computed``)."""
    return tuple(f.name for f in fields(value_type) if f.name not in computed)


_JOB_COLUMNS = _same_named(Job, "flags", "status", "correlation_id", "trace_context")
_HISTORY_COLUMNS = _same_named(HistoryRecord)
_RATE_LIMIT_COLUMNS = _same_named(RateLimit, "interval")
_TASK_COLUMNS = _same_named(TaskIdentifier)
_QUEUE_COLUMNS = _same_named(JobQueue, "job_count")
_WORKER_COLUMNS = _same_named(WorkerInfo, "task_identifiers")


def _read(m: Mapping[Any, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The values of the columns ``names``, by name, as keyword arguments of a value type."""
    return {name: m[name] for name in names}


def job_from_row(row: Row[Any] | Any, *, with_correlation: bool = False) -> Job:
    """A Job from a full ``queuekit_jobs`` row; the correlation id only for a fresh claim."""
    return job_from_mapping(row._mapping, with_correlation=with_correlation)


def job_from_mapping(m: Mapping[Any, Any], *, with_correlation: bool = False) -> Job:
    """A Job from the values of every ``queuekit_jobs`` column, by column name."""
    return Job(
        **_read(m, _JOB_COLUMNS),
        flags=tuple(m["flags"] or ()),
        status=job_status(m["locked_at"], m["attempts"], m["max_attempts"]),
        correlation_id=m["correlation_id"] if with_correlation else None,
        trace_context=m.get("trace_context"),
    )


def history_from_row(row: Row[Any]) -> HistoryRecord:
    """A HistoryRecord from a full ``queuekit_job_history`` row."""
    return HistoryRecord(**_read(row._mapping, _HISTORY_COLUMNS))


def rate_limit_from_row(row: Row[Any]) -> RateLimit:
    """A RateLimit from a full ``queuekit_rate_limits`` row."""
    m = row._mapping
    return RateLimit(
        **_read(m, _RATE_LIMIT_COLUMNS), interval=timedelta(milliseconds=m["interval_ms"])
    )


def task_identifier_from_row(row: Row[Any]) -> TaskIdentifier:
    """A TaskIdentifier from a full ``queuekit_task_identifiers`` row."""
    return TaskIdentifier(**_read(row._mapping, _TASK_COLUMNS))


def job_queue_from_row(row: Row[Any]) -> JobQueue:
    """A JobQueue from a queue row with a counted ``job_count`` column."""
    m = row._mapping
    return JobQueue(**_read(m, _QUEUE_COLUMNS), job_count=int(m["job_count"] or 0))


def worker_from_row(row: Row[Any]) -> WorkerInfo:
    """A WorkerInfo from a full ``queuekit_workers`` row."""
    m = row._mapping
    tasks = m["task_identifiers"]
    return WorkerInfo(
        **_read(m, _WORKER_COLUMNS), task_identifiers=None if tasks is None else tuple(tasks)
    )
