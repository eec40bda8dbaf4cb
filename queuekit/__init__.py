"""queuekit: a job queue that lives in the database your SQLAlchemy application already has."""

from __future__ import annotations

from queuekit.async_manager import AsyncJobManager
from queuekit.cron import CronJob
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
from queuekit.events import Event
from queuekit.maintenance import Maintenance
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
from queuekit.worker import JobContext, Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncJobManager",
    "CronJob",
    "DatabaseError",
    "Event",
    "HistoryRecord",
    "InvalidArgumentError",
    "InvalidSchemaError",
    "InvalidWorkerIdError",
    "Job",
    "JobContext",
    "JobError",
    "JobKeyError",
    "JobManager",
    "JobQueue",
    "JobSpec",
    "Maintenance",
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
    "Worker",
    "WorkerStats",
    "__version__",
]
