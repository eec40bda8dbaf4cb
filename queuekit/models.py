"""Declarative models of queuekit's seven tables, on one MetaData with a naming convention.

Every table is prefixed ``queuekit_`` so it never collides with the host
application's tables. Types are portable; PostgreSQL gets JSONB and native
UUIDs, MySQL/MariaDB microsecond DATETIMEs, SQLite text timestamps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    and_,
    column,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from queuekit.defaults import MAX_ATTEMPTS
from queuekit.types import HISTORY_STATUSES, JOB_KEY_MODES, JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_LENGTH = 255
#: Most characters queuekit writes into a TEXT column: MySQL/MariaDB's TEXT holds
#: 65,535 bytes, so four bytes per character must still fit.
TEXT_LENGTH = 16_000

#: The order workers claim jobs in (and the claim index's columns): the
#: lowest priority number first, then the earliest ``run_at``, then the
#: oldest id.
CLAIM_ORDER = ("priority", "run_at", "id")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; SQLite and MySQL store naive UTC values
    (microsecond precision on MySQL), which this type converts at the edges.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONDocument(TypeDecorator[Any]):
    """A JSON document: JSONB on PostgreSQL, the dialect's JSON type elsewhere.

    Python ``None`` is stored as SQL NULL. The dialect's type is chosen when a
    dialect asks for it, so defining the tables imports no dialect's module
    (a command-line call on SQLite never loads PostgreSQL's or MySQL's).
    """

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))


def exact_collation(dialect: Dialect) -> str:
    """The MySQL/MariaDB collation that compares names byte for byte, trailing spaces too."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if tuple(dialect.server_version_info or (8, 0, 17)) < (8, 0, 17):
        return "utf8mb4_bin"  # the only binary one before utf8mb4_0900_bin; pads spaces
    return "utf8mb4_0900_bin"


def status_condition(
    status: JobStatus, locked_at: Any, attempts: Any, max_attempts: Any
) -> ColumnElement[bool]:
    """The SQL condition of a derived job status, over the given columns.

    The one statement of the rule (:func:`job_status` is its Python twin):
    a job is locked while ``locked_at`` is set, else exhausted once its
    attempts reach ``max_attempts``, else available. The jobs table's
    partial indexes are built from it too.
    """
    if status == "locked":
        return locked_at.is_not(None)  # type: ignore[no-any-return]
    if status == "exhausted":
        return and_(locked_at.is_(None), attempts >= max_attempts)
    return and_(locked_at.is_(None), attempts < max_attempts)


def job_status(locked_at: Any, attempts: int, max_attempts: int) -> JobStatus:
    """A row's derived status, computed in Python as :func:`status_condition` says in SQL."""
    if locked_at is not None:
        return "locked"
    if attempts >= max_attempts:
        return "exhausted"
    return "available"


def _one_of(name: str, values: tuple[str, ...]) -> str:
    """A CHECK condition: the column holds one of the values."""
    return f"{name} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


#: The jobs table's columns by name, for its own partial indexes (defined before the table is).
_AVAILABLE = status_condition(
    "available", column("locked_at"), column("attempts"), column("max_attempts")
)
_EXHAUSTED = status_condition(
    "exhausted", column("locked_at"), column("attempts"), column("max_attempts")
)


class NameString(TypeDecorator[str]):
    """A task identifier, queue name, job key, rate-limit key or worker id.

    Names compare exactly on every dialect. MySQL/MariaDB's default collations
    ignore case, accents and trailing spaces, which would make ``Mail`` and
    ``mail`` one queue and one job key; there the column gets a binary
    collation without padding.
    """

    impl = String(NAME_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import VARCHAR

            exact = VARCHAR(NAME_LENGTH, charset="utf8mb4", collation=exact_collation(dialect))
            return dialect.type_descriptor(exact)
        return dialect.type_descriptor(String(NAME_LENGTH))


Name = NameString()


class Base(DeclarativeBase):
    """Base of queuekit's models; its metadata holds exactly queuekit's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobRow(Base):
    """A queued, running or exhausted job. Completed jobs are deleted."""

    __tablename__ = "queuekit_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    task_identifier: Mapped[str] = mapped_column(Name)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    queue_name: Mapped[str | None] = mapped_column(Name)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text(str(MAX_ATTEMPTS)))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    job_key: Mapped[str | None] = mapped_column(Name, unique=True)
    job_key_mode: Mapped[str | None] = mapped_column(String(32))
    flags: Mapped[list[str]] = mapped_column(JSONDocument)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(Name)
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    revision: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rate_limit_key: Mapped[str | None] = mapped_column(
        Name, ForeignKey("queuekit_rate_limits.key", ondelete="SET NULL")
    )
    #: The enqueuer's W3C trace context (``traceparent``, ``tracestate``) when
    #: tracing is on (:mod:`queuekit.otel`); NULL otherwise.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONDocument)

    __table_args__ = (
        CheckConstraint(_one_of("job_key_mode", JOB_KEY_MODES), name="job_key_mode"),
        CheckConstraint("max_attempts >= 1", name="max_attempts"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # The claim reads this index in claim order; locked and exhausted jobs
        # are left out of it on the dialects that support partial indexes.
        Index(
            "ix_queuekit_jobs_claim",
            *CLAIM_ORDER,
            postgresql_where=_AVAILABLE,
            sqlite_where=_AVAILABLE,
        ),
        Index("ix_queuekit_jobs_queue_name", "queue_name", "locked_at"),
        Index("ix_queuekit_jobs_locked_at", "locked_at"),
        Index("ix_queuekit_jobs_rate_limit_key", "rate_limit_key"),
        # stats() reads these instead of the table: job counts per task and
        # queue, exhausted jobs alone (on MySQL, which lacks partial indexes,
        # the index covers the condition's columns instead), and the oldest
        # waiting run_at as the first entry of an index of available jobs.
        Index("ix_queuekit_jobs_task_queue", "task_identifier", "queue_name"),
        Index(
            "ix_queuekit_jobs_exhausted",
            "task_identifier",
            "queue_name",
            "locked_at",
            "attempts",
            "max_attempts",
            postgresql_where=_EXHAUSTED,
            sqlite_where=_EXHAUSTED,
        ),
        Index(
            "ix_queuekit_jobs_available_run_at",
            "run_at",
            postgresql_where=_AVAILABLE,
            sqlite_where=_AVAILABLE,
        ),
        # The dashboard's jobs list by task, newest first, and its per-task
        # counts of waiting and scheduled jobs (see queuekit.web.queries).
        Index("ix_queuekit_jobs_task_id", "task_identifier", "id"),
        Index(
            "ix_queuekit_jobs_task_run_at",
            "task_identifier",
            "run_at",
            postgresql_where=_AVAILABLE,
            sqlite_where=_AVAILABLE,
        ),
    )


class JobQueueRow(Base):
    """A named queue: at most one of its jobs runs at a time, guarded by this row's lock."""

    __tablename__ = "queuekit_job_queues"

    queue_name: Mapped[str] = mapped_column(Name, primary_key=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(Name)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskIdentifierRow(Base):
    """A task identifier, when it was last used, and its optional payload schema."""

    __tablename__ = "queuekit_task_identifiers"

    identifier: Mapped[str] = mapped_column(Name, primary_key=True)
    payload_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    schema_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set while the task is paused: claims skip its jobs.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobHistoryRow(Base):
    """One attempt of one job. Outlives the job; expires at ``expires_at``."""

    __tablename__ = "queuekit_job_history"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    correlation_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    task_identifier: Mapped[str] = mapped_column(Name)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    queue_name: Mapped[str | None] = mapped_column(Name)
    priority: Mapped[int] = mapped_column(Integer)
    flags: Mapped[list[str]] = mapped_column(JSONDocument)
    rate_limit_key: Mapped[str | None] = mapped_column(Name)
    worker_id: Mapped[str | None] = mapped_column(Name)
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue_time_ms: Mapped[int | None] = mapped_column(BigInteger)
    execution_time_ms: Mapped[int | None] = mapped_column(BigInteger)
    attempt_number: Mapped[int] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_stack: Mapped[str | None] = mapped_column(Text)
    completed_steps: Mapped[list[str] | None] = mapped_column(JSONDocument)
    failed_steps: Mapped[list[str] | None] = mapped_column(JSONDocument)
    retry_from_step: Mapped[str | None] = mapped_column(Text)
    partial_results: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_one_of("status", HISTORY_STATUSES), name="status"),
        Index("ix_queuekit_job_history_job_id", "job_id", "started_at"),
        Index("ix_queuekit_job_history_status_started_at", "status", "started_at"),
        # Covers the dashboard's charts (read from the index alone); by
        # started_at for everything else.
        Index(
            "ix_queuekit_job_history_started_at",
            "started_at",
            "status",
            "queue_time_ms",
            "execution_time_ms",
        ),
        Index("ix_queuekit_job_history_expires_at", "expires_at"),
        Index("ix_queuekit_job_history_task_identifier", "task_identifier", "started_at"),
        # The dashboard's history list filtered by task and status, newest first.
        Index("ix_queuekit_job_history_task_status", "task_identifier", "status", "started_at"),
    )


class RateLimitRow(Base):
    """A fixed-window token bucket; ``interval_ms`` is the window length."""

    __tablename__ = "queuekit_rate_limits"

    key: Mapped[str] = mapped_column(Name, primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    interval_ms: Mapped[int] = mapped_column(BigInteger)
    available_tokens: Mapped[int] = mapped_column(Integer)
    last_refill_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_refill_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity"),
        CheckConstraint("interval_ms > 0", name="interval_ms"),
        CheckConstraint(
            "available_tokens >= 0 AND available_tokens <= capacity", name="tokens_bound"
        ),
        Index("ix_queuekit_rate_limits_next_refill_at", "next_refill_at"),
    )


class KnownCrontabRow(Base):
    """Cron state: when each recurring job's last slot fired."""

    __tablename__ = "queuekit_known_crontabs"

    identifier: Mapped[str] = mapped_column(Name, primary_key=True)
    known_since: Mapped[datetime] = mapped_column(UTCDateTime)
    last_execution: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerRow(Base):
    """A running worker; ``last_seen`` moves with its heartbeats, a clean stop deletes it."""

    __tablename__ = "queuekit_workers"

    worker_id: Mapped[str] = mapped_column(Name, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(NAME_LENGTH))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    task_identifiers: Mapped[list[str] | None] = mapped_column(JSONDocument)
    concurrency: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))


metadata = Base.metadata
jobs = cast(Table, JobRow.__table__)
job_queues = cast(Table, JobQueueRow.__table__)
task_identifiers = cast(Table, TaskIdentifierRow.__table__)
job_history = cast(Table, JobHistoryRow.__table__)
rate_limits = cast(Table, RateLimitRow.__table__)
known_crontabs = cast(Table, KnownCrontabRow.__table__)
workers = cast(Table, WorkerRow.__table__)


def claim_order(columns: Any) -> tuple[ColumnElement[Any], ...]:
    """The claim-order columns of ``columns`` (a table's or a subquery's ``.c``)."""
    return tuple(columns[name] for name in CLAIM_ORDER)


def claim_key(job: Any) -> tuple[Any, ...]:
    """A job's (or a candidate row's) place in claim order, for sorting in Python."""
    return tuple(getattr(job, name) for name in CLAIM_ORDER)


def job_status_is(status: JobStatus) -> ColumnElement[bool]:
    """The SQL condition of a derived job status over ``queuekit_jobs``."""
    return status_condition(status, jobs.c.locked_at, jobs.c.attempts, jobs.c.max_attempts)
