"""queuekit: a job queue that lives in the database your SQLAlchemy application already has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from queuekit.cron import CronJob
from queuekit.errors import (
    DatabaseError,
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    LockLostError,
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
    WorkerInfo,
    WorkerStats,
)
from queuekit.worker import JobContext, Worker

if TYPE_CHECKING:
    from queuekit.async_manager import AsyncJobManager

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import :class:`AsyncJobManager` on first use.

    SQLAlchemy's asyncio support needs ``greenlet``, which only the ``*-async``
    extras install; a synchronous application must be able to import queuekit
    without it.
    """
    if name == "AsyncJobManager":
        try:
            from queuekit.async_manager import AsyncJobManager
        except ImportError as error:
            raise ImportError(
                f"AsyncJobManager needs SQLAlchemy's asyncio support ({error}); install "
                "queuekit[postgresql-async], queuekit[sqlite-async] or queuekit[mysql-async]"
            ) from error
        return AsyncJobManager
    raise AttributeError(f"module 'queuekit' has no attribute {name!r}")


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
    "LockLostError",
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
    "WorkerInfo",
    "WorkerStats",
    "__version__",
]
