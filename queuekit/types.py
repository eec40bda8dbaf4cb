"""The value types of the public API: immutable snapshots of rows and requests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args
from uuid import UUID

from queuekit.defaults import MAX_ATTEMPTS
from queuekit.durations import Duration, duration_ms
from queuekit.errors import InvalidArgumentError

# Each enumeration is written once, as its type; the tuples are read from it.
JobStatus = Literal["available", "locked", "exhausted"]
HistoryStatus = Literal["started", "completed", "failed", "partial_success", "cancelled"]
JobKeyMode = Literal["replace", "preserve_run_at", "unsafe_dedupe"]
JOB_KEY_MODES: tuple[JobKeyMode, ...] = get_args(JobKeyMode)
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
HISTORY_STATUSES: tuple[HistoryStatus, ...] = get_args(HistoryStatus)


@dataclass(frozen=True)
class Job:
    """A job row as read from ``queuekit_jobs``; status is derived from the lock and attempts."""

    id: UUID
    task_identifier: str
    payload: dict[str, Any]
    priority: int
    queue_name: str | None
    run_at: datetime
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    job_key: str | None
    job_key_mode: str | None
    flags: tuple[str, ...]
    locked_at: datetime | None
    locked_by: str | None
    revision: int
    rate_limit_key: str | None
    status: JobStatus
    correlation_id: UUID | None = None
    #: The enqueuer's W3C trace context, stored when tracing was on at enqueue.
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything ``add_job`` accepts, as one value, for ``add_jobs``."""

    task_identifier: str
    payload: Any = None
    queue_name: str | None = None
    run_at: datetime | None = None
    priority: int = 0
    max_attempts: int = MAX_ATTEMPTS
    job_key: str | None = None
    job_key_mode: str | None = None
    flags: Sequence[str] = ()
    rate_limit_key: str | None = None


@dataclass(frozen=True)
class JobError:
    """A claimed job and the error its attempt ended with (exception, text or None)."""

    job: Job
    error: BaseException | str | None


@dataclass(frozen=True)
class PartialSuccess:
    """What a task returns when only some of its steps succeeded; the job is retried."""

    completed_steps: list[str] | tuple[str, ...]
    failed_steps: list[str] | tuple[str, ...]
    retry_from_step: str | None = None
    results: Any = None


@dataclass(frozen=True)
class HistoryRecord:
    """One attempt of one job, from ``queuekit_job_history``."""

    id: UUID
    job_id: UUID
    correlation_id: UUID
    task_identifier: str
    payload: dict[str, Any]
    worker_id: str | None
    status: HistoryStatus
    started_at: datetime | None
    completed_at: datetime | None
    queue_time_ms: int | None
    execution_time_ms: int | None
    attempt_number: int
    error_message: str | None
    error_stack: str | None
    completed_steps: list[str] | None
    failed_steps: list[str] | None
    retry_from_step: str | None
    partial_results: Any
    expires_at: datetime | None


@dataclass(frozen=True)
class JobQueue:
    """A named queue; ``job_count`` is counted when read."""

    queue_name: str
    locked_at: datetime | None
    locked_by: str | None
    job_count: int


@dataclass(frozen=True)
class RateLimit:
    """A fixed-window token bucket shared by every job carrying its key."""

    key: str
    capacity: int
    interval: timedelta
    available_tokens: int
    last_refill_at: datetime
    next_refill_at: datetime


@dataclass(frozen=True)
class TaskIdentifier:
    """A task identifier seen by the queue, with its optional payload schema.

    ``paused_at`` is when :meth:`~queuekit.JobManager.pause_tasks` paused it
    (claims skip its jobs until it is resumed), None when it runs normally.
    """

    identifier: str
    payload_schema: dict[str, Any] | None
    created_at: datetime
    last_used: datetime
    paused_at: datetime | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """A running worker as registered in ``queuekit_workers``.

    ``last_seen`` moves with every heartbeat; a row not seen for three
    heartbeat periods belongs to a dead process. ``task_identifiers`` is
    None when the worker runs every task it knows.
    """

    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen: datetime
    task_identifiers: tuple[str, ...] | None
    concurrency: int
    version: str


@dataclass(frozen=True)
class QueueStats:
    """Counts of jobs by status, task and named queue, and the age of the oldest waiting job."""

    by_status: dict[str, int]
    by_task: dict[str, dict[str, int]]
    by_queue: dict[str, dict[str, Any]]
    oldest_available_age: timedelta | None


@dataclass
class WorkerStats:
    """Running counters of one worker."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    exhausted: int = 0
    partial_success: int = 0
    timed_out: int = 0
    errors: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts.

    ``delay = clamp(base_delay * multiplier ** min(attempts, exponent_cap))`` between
    ``base_delay`` and ``max_delay``, plus up to ``jitter`` of it, never above ``max_delay``.
    """

    base_delay: Duration = "1 second"
    multiplier: float = 2.0
    max_delay: Duration = "1 hour"
    jitter: float = 0.1
    exponent_cap: int = 10
    _base_ms: int = field(init=False, repr=False, compare=False)
    _max_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base_ms = duration_ms(self.base_delay, name="base_delay")
        max_ms = duration_ms(self.max_delay, name="max_delay")
        if max_ms < base_ms:
            raise InvalidArgumentError("max_delay must not be shorter than base_delay")
        if not isinstance(self.multiplier, int | float) or self.multiplier < 1:
            raise InvalidArgumentError("multiplier must be a number >= 1")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise InvalidArgumentError("jitter must be between 0 and 1")
        if not isinstance(self.exponent_cap, int) or self.exponent_cap < 0:
            raise InvalidArgumentError("exponent_cap must be a non-negative int")
        object.__setattr__(self, "_base_ms", base_ms)
        object.__setattr__(self, "_max_ms", max_ms)

    def delay_ms(self, attempts: int, *, rng: random.Random | None = None) -> int:
        """The wait after the ``attempts``-th attempt failed (attempts counted from 1)."""
        raw = self._base_ms * self.multiplier ** min(attempts, self.exponent_cap)
        clamped = min(float(self._max_ms), max(float(self._base_ms), raw))
        draw = (rng or random).random()
        return int(min(float(self._max_ms), clamped + clamped * self.jitter * draw))
