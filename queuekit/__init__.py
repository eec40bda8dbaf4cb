"""queuekit: a job queue that lives in the database your SQLAlchemy application already has."""

from __future__ import annotations

from queuekit.errors import (
    DatabaseError,
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
    QueueKitError,
    SchemaNotMigratedError,
    TransientDatabaseError,
    UnknownRateLimitError,
    UnsupportedDatabaseError,
)
from queuekit.manager import JobManager
from queuekit.types import (
    HistoryRecord,
    Job,
    JobError,
    JobQueue,
    JobSpec,
    PartialSuccess,
    QueueStats,
    RateLimit,
    RetryPolicy,
    TaskIdentifier,
    WorkerStats,
)

__version__ = "0.1.0"

__all__ = [
    "DatabaseError",
    "HistoryRecord",
    "InvalidArgumentError",
    "InvalidSchemaError",
    "InvalidWorkerIdError",
    "Job",
    "JobError",
    "JobKeyError",
    "JobManager",
    "JobQueue",
    "JobSpec",
    "PartialSuccess",
    "PayloadValidationError",
    "QueueKitError",
    "QueueStats",
    "RateLimit",
    "RetryPolicy",
    "SchemaNotMigratedError",
    "TaskIdentifier",
    "TransientDatabaseError",
    "UnknownRateLimitError",
    "UnsupportedDatabaseError",
    "WorkerStats",
    "__version__",
]
