"""Conversion of result rows into the public value types."""

from __future__ import annotations

from collections.abc import Mapping
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


def job_from_row(row: Row[Any] | Any, *, with_correlation: bool = False) -> Job:
    """A Job from a full ``queuekit_jobs`` row; the correlation id only for a fresh claim."""
    return job_from_mapping(row._mapping, with_correlation=with_correlation)


def job_from_mapping(m: Mapping[Any, Any], *, with_correlation: bool = False) -> Job:
    """A Job from the values of every ``queuekit_jobs`` column, by column name."""
    return Job(
        id=m["id"],
        task_identifier=m["task_identifier"],
        payload=m["payload"],
        priority=m["priority"],
        queue_name=m["queue_name"],
        run_at=m["run_at"],
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        job_key=m["job_key"],
        job_key_mode=m["job_key_mode"],
        flags=tuple(m["flags"] or ()),
        locked_at=m["locked_at"],
        locked_by=m["locked_by"],
        revision=m["revision"],
        rate_limit_key=m["rate_limit_key"],
        status=job_status(m["locked_at"], m["attempts"], m["max_attempts"]),
        correlation_id=m["correlation_id"] if with_correlation else None,
        trace_context=m.get("trace_context"),
    )


def history_from_row(row: Row[Any]) -> HistoryRecord:
    """A HistoryRecord from a full ``queuekit_job_history`` row."""
    m = row._mapping
    return HistoryRecord(
        id=m["id"],
        job_id=m["job_id"],
        correlation_id=m["correlation_id"],
        task_identifier=m["task_identifier"],
        payload=m["payload"],
        worker_id=m["worker_id"],
        status=m["status"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        queue_time_ms=m["queue_time_ms"],
        execution_time_ms=m["execution_time_ms"],
        attempt_number=m["attempt_number"],
        error_message=m["error_message"],
        error_stack=m["error_stack"],
        completed_steps=m["completed_steps"],
        failed_steps=m["failed_steps"],
        retry_from_step=m["retry_from_step"],
        partial_results=m["partial_results"],
        expires_at=m["expires_at"],
    )


def rate_limit_from_row(row: Row[Any]) -> RateLimit:
    """A RateLimit from a full ``queuekit_rate_limits`` row."""
    m = row._mapping
    return RateLimit(
        key=m["key"],
        capacity=m["capacity"],
        interval=timedelta(milliseconds=m["interval_ms"]),
        available_tokens=m["available_tokens"],
        last_refill_at=m["last_refill_at"],
        next_refill_at=m["next_refill_at"],
    )


def task_identifier_from_row(row: Row[Any]) -> TaskIdentifier:
    """A TaskIdentifier from a full ``queuekit_task_identifiers`` row."""
    m = row._mapping
    return TaskIdentifier(
        identifier=m["identifier"],
        payload_schema=m["payload_schema"],
        created_at=m["created_at"],
        last_used=m["last_used"],
        paused_at=m["paused_at"],
    )


def job_queue_from_row(row: Row[Any]) -> JobQueue:
    """A JobQueue from a queue row with a counted ``job_count`` column."""
    m = row._mapping
    return JobQueue(
        queue_name=m["queue_name"],
        locked_at=m["locked_at"],
        locked_by=m["locked_by"],
        job_count=int(m["job_count"] or 0),
    )


def worker_from_row(row: Row[Any]) -> WorkerInfo:
    """A WorkerInfo from a full ``queuekit_workers`` row."""
    m = row._mapping
    tasks = m["task_identifiers"]
    return WorkerInfo(
        worker_id=m["worker_id"],
        hostname=m["hostname"],
        pid=m["pid"],
        started_at=m["started_at"],
        last_seen=m["last_seen"],
        task_identifiers=None if tasks is None else tuple(tasks),
        concurrency=m["concurrency"],
        version=m["version"],
    )
