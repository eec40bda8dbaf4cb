"""queuekit: a job queue that lives in the database your SQLAlchemy application already has.

The errors and value types are imported at once; the manager, the worker,
cron and maintenance on first use, so that importing queuekit (as the
command line does to answer ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from queuekit.errors import (
    ASYNC_EXTRAS_HINT,
    CommitUnknownError,
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

if TYPE_CHECKING:
    from queuekit.async_manager import AsyncJobManager
    from queuekit.cron import CronJob
    from queuekit.events import Event
    from queuekit.maintenance import Maintenance
    from queuekit.manager import JobManager
    from queuekit.worker import JobContext, Worker

#: Names imported on first use, and the module each comes from.
_LAZY = {
    "CronJob": "queuekit.cron",
    "Event": "queuekit.events",
    "JobContext": "queuekit.worker",
    "JobManager": "queuekit.manager",
    "Maintenance": "queuekit.maintenance",
    "Worker": "queuekit.worker",
}

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import the names of :data:`_LAZY` and :class:`AsyncJobManager` on first use.

    SQLAlchemy's asyncio support needs ``greenlet``, which only the ``*-async``
    extras install; a synchronous application must be able to import queuekit
    without it.
    """
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "AsyncJobManager":
        try:
            from queuekit.async_manager import AsyncJobManager
        except ImportError as error:
            raise ImportError(
                f"AsyncJobManager needs SQLAlchemy's asyncio support ({error}); {ASYNC_EXTRAS_HINT}"
            ) from error
        return AsyncJobManager
    raise AttributeError(f"module 'queuekit' has no attribute {name!r}")


__all__ = [
    "AsyncJobManager",
    "CommitUnknownError",
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
    "WorkerInfo",
    "WorkerStats",
    "__version__",
]
