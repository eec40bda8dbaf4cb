"""AsyncJobManager: JobManager's methods as coroutines over an AsyncEngine.

There is no second copy of any statement or check here. Each coroutine runs
the synchronous :class:`~queuekit.manager.JobManager` method, built on the
async engine's ``sync_engine``, in SQLAlchemy's greenlet bridge:

- ``session=None``: the method runs as it does synchronously (its own short
  transaction, committed, retried on deadlock; maintenance in bounded
  batches), through the same bridge that ``AsyncConnection.run_sync`` uses.
- ``session=`` an :class:`~sqlalchemy.ext.asyncio.AsyncSession` or
  :class:`~sqlalchemy.ext.asyncio.AsyncConnection``: the method runs through
  its ``run_sync`` on the underlying Session/Connection, inside the caller's
  transaction, which is never committed or rolled back here.

Drivers, chosen to be the async twins of the synchronous ones so that types,
JSON handling and error translation behave identically:

- PostgreSQL: psycopg 3 in async mode — ``create_async_engine("postgresql+psycopg://...")``
  (SQLAlchemy picks psycopg's async dialect). The same driver as the sync
  side; asyncpg would bring its own type codecs and exception classes.
- SQLite: aiosqlite (``sqlite+aiosqlite:///...``), a thread around the
  standard ``sqlite3`` module; the same WAL, busy-timeout and
  ``BEGIN IMMEDIATE`` preparation applies.
- MySQL/MariaDB: aiomysql (``mysql+aiomysql://...``), built on PyMySQL, the
  sync driver, so errors and conversions match; pure Python, nothing to
  compile (asyncmy needs a C extension).

The schema check (unmigrated or out-of-date tables raise
:class:`~queuekit.errors.SchemaNotMigratedError`) runs asynchronously: call
``await manager.check_database()``, or let the first operation do it.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

from queuekit import defaults
from queuekit.async_administration import AsyncAdministration, AsyncSessionLike
from queuekit.durations import Duration
from queuekit.errors import ASYNC_EXTRAS_HINT, InvalidArgumentError
from queuekit.manager import JobManager
from queuekit.repository import FinishedJob, Outcome
from queuekit.types import (
    HistoryRecord,
    Job,
    JobError,
    JobQueue,
    JobSpec,
    PartialSuccess,
    QueueStats,
    RetryPolicy,
    TaskIdentifier,
)

T = TypeVar("T")


def _check_async_session(session: object) -> None:
    if session is not None and not isinstance(session, AsyncSession | AsyncConnection):
        raise InvalidArgumentError(
            "session must be a sqlalchemy AsyncSession, an AsyncConnection or None, "
            f"not {type(session).__name__}"
        )


def require_greenlet() -> None:
    """Refuse to build an async manager where SQLAlchemy's asyncio support cannot run.

    SQLAlchemy 2.1 no longer installs ``greenlet`` by default and imports its
    asyncio module without it, failing only at the first query; this says
    what to install up front instead.
    """
    try:
        found = importlib.util.find_spec("greenlet") is not None
    except ValueError:  # a module object without a spec stands in for it
        found = True
    if not found:
        raise ImportError(
            "AsyncJobManager needs SQLAlchemy's asyncio support, which needs the greenlet "
            f"package (not installed); {ASYNC_EXTRAS_HINT}"
        )


class AsyncJobManager(AsyncAdministration):
    """The :class:`~queuekit.JobManager` API as coroutines, over an ``AsyncEngine``."""

    def __init__(
        self,
        bind: AsyncEngine,
        *,
        retry: RetryPolicy | None = None,
        validate_payloads: bool = True,
        schema: str | None = None,
        schema_cache_ttl: Duration = "5 seconds",
        validate_formats: bool = True,
    ) -> None:
        if not isinstance(bind, AsyncEngine):
            raise InvalidArgumentError(
                "AsyncJobManager needs a sqlalchemy AsyncEngine (create_async_engine), "
                f"not {type(bind).__name__}"
            )
        require_greenlet()
        self.engine = bind
        #: The synchronous manager whose methods every coroutine runs.
        self.sync_manager = JobManager(
            bind.sync_engine,
            retry=retry,
            validate_payloads=validate_payloads,
            schema=schema,
            schema_cache_ttl=schema_cache_ttl,
            check_schema=False,
            validate_formats=validate_formats,
        )
        self._checked = False

    async def check_database(self) -> None:
        """Refuse old servers and unmigrated or out-of-date schemas."""
        await greenlet_spawn(self.sync_manager.check_database)
        self._checked = True

    async def _check_database_in(self, session: AsyncSessionLike) -> None:
        """The first operation's schema check, through the caller's connection if any.

        A check on a connection of its own could wait for a lock the caller's
        transaction holds (SQLite's write lock) until the busy timeout.
        """
        if session is None:
            await self.check_database()
            return
        check = self.sync_manager.check_database
        if isinstance(session, AsyncSession):
            await session.run_sync(lambda sync_session: check(session=sync_session))
        else:
            await session.run_sync(lambda connection: check(session=connection))
        self._checked = True

    async def _call(
        self, method: Callable[..., T], session: AsyncSessionLike, *args: Any, **kwargs: Any
    ) -> T:
        """Run a JobManager method in the caller's async transaction, or in its own."""
        _check_async_session(session)
        if not self._checked:
            await self._check_database_in(session)
        if session is None:
            return await greenlet_spawn(method, *args, session=None, **kwargs)
        if isinstance(session, AsyncSession):
            return await session.run_sync(
                lambda sync_session: method(*args, session=sync_session, **kwargs)
            )
        return await session.run_sync(
            lambda connection: method(*args, session=connection, **kwargs)
        )

    # -- enqueue ------------------------------------------------------------------

    async def register_task(
        self,
        task_identifier: str,
        *,
        schema: dict[str, Any] | None,
        session: AsyncSessionLike = None,
    ) -> TaskIdentifier:
        """Store, replace or (with None) remove the JSON Schema of a task's payloads."""
        return await self._call(
            self.sync_manager.register_task, session, task_identifier, schema=schema
        )

    async def get_task(
        self, task_identifier: str, *, session: AsyncSessionLike = None
    ) -> TaskIdentifier | None:
        """One task identifier with its schema, or None."""
        return await self._call(self.sync_manager.get_task, session, task_identifier)

    async def add_job(
        self,
        task_identifier: str,
        payload: Any = None,
        *,
        queue_name: str | None = None,
        run_at: datetime | None = None,
        priority: int = 0,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        job_key: str | None = None,
        job_key_mode: str | None = None,
        flags: Sequence[str] = (),
        rate_limit_key: str | None = None,
        session: AsyncSessionLike = None,
    ) -> Job:
        """Validate the payload and enqueue one job."""
        return await self._call(
            self.sync_manager.add_job,
            session,
            task_identifier,
            payload,
            queue_name=queue_name,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
            job_key=job_key,
            job_key_mode=job_key_mode,
            flags=flags,
            rate_limit_key=rate_limit_key,
        )

    async def add_jobs(
        self, specs: Sequence[JobSpec], *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Validate every payload, then insert all jobs atomically; results in input order."""
        return await self._call(self.sync_manager.add_jobs, session, specs)

    # -- worker surface -------------------------------------------------------------

    async def get_jobs(
        self,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None = None,
        forbidden_flags: Sequence[str] | None = None,
        batch_size: int = 1,
        history_retention: Duration = defaults.HISTORY_RETENTION,
        session: AsyncSessionLike = None,
        max_queued: int | None = None,
    ) -> list[Job]:
        """Claim up to ``batch_size`` jobs; each carries the ``correlation_id`` of its attempt."""
        return await self._call(
            self.sync_manager.get_jobs,
            session,
            worker_id,
            task_identifiers=task_identifiers,
            forbidden_flags=forbidden_flags,
            batch_size=batch_size,
            history_retention=history_retention,
            max_queued=max_queued,
        )

    async def finish_jobs(
        self, worker_id: str, outcomes: Sequence[Outcome], *, session: AsyncSessionLike = None
    ) -> list[FinishedJob]:
        """Record a mix of outcomes in one transaction."""
        return await self._call(self.sync_manager.finish_jobs, session, worker_id, outcomes)

    async def complete_jobs(
        self,
        worker_id: str,
        jobs: Sequence[Job],
        execution_time_ms: int,
        *,
        session: AsyncSessionLike = None,
    ) -> list[Job]:
        """Complete claimed jobs; returns those this worker still owned."""
        return await self._call(
            self.sync_manager.complete_jobs, session, worker_id, jobs, execution_time_ms
        )

    async def fail_jobs(
        self,
        worker_id: str,
        job_errors: Sequence[JobError],
        execution_time_ms: int,
        *,
        session: AsyncSessionLike = None,
    ) -> list[Job]:
        """Fail claimed attempts: retry with backoff, or exhaust at the last attempt."""
        return await self._call(
            self.sync_manager.fail_jobs, session, worker_id, job_errors, execution_time_ms
        )

    async def report_partial_success(
        self,
        worker_id: str,
        job: Job,
        partial: PartialSuccess,
        execution_time_ms: int,
        *,
        session: AsyncSessionLike = None,
    ) -> Job | None:
        """Record a partly successful attempt: retried with backoff, or exhausted at the last."""
        return await self._call(
            self.sync_manager.report_partial_success,
            session,
            worker_id,
            job,
            partial,
            execution_time_ms,
        )

    async def heartbeat(
        self, worker_id: str, jobs: Sequence[Job], *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Keep the locks of claimed jobs fresh; returns those still held, in the given order."""
        return await self._call(self.sync_manager.heartbeat, session, worker_id, jobs)

    async def release_jobs(
        self, worker_id: str, jobs: Sequence[Job], *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Give back claimed jobs that were never run; their attempt is not consumed."""
        return await self._call(self.sync_manager.release_jobs, session, worker_id, jobs)

    # -- reading ------------------------------------------------------------------------

    async def get_job(self, job_id: uuid.UUID, *, session: AsyncSessionLike = None) -> Job | None:
        """One job, or None (completed jobs are gone: see ``job_history``)."""
        return await self._call(self.sync_manager.get_job, session, job_id)

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        task_identifier: str | None = None,
        queue_name: str | None = None,
        limit: int = 100,
        session: AsyncSessionLike = None,
    ) -> list[Job]:
        """Jobs in claim order, filtered by status, task and queue."""
        return await self._call(
            self.sync_manager.list_jobs,
            session,
            status=status,
            task_identifier=task_identifier,
            queue_name=queue_name,
            limit=limit,
        )

    async def job_history(
        self, job_id: uuid.UUID, *, session: AsyncSessionLike = None
    ) -> list[HistoryRecord]:
        """Every attempt of a job, newest first."""
        return await self._call(self.sync_manager.job_history, session, job_id)

    async def query_history(
        self,
        *,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        task_identifier: str | None = None,
        status: str | None = None,
        limit: int = 100,
        session: AsyncSessionLike = None,
    ) -> list[HistoryRecord]:
        """History rows started within a window, by task and status, newest first."""
        return await self._call(
            self.sync_manager.query_history,
            session,
            from_time=from_time,
            to_time=to_time,
            task_identifier=task_identifier,
            status=status,
            limit=limit,
        )

    async def list_queues(self, *, session: AsyncSessionLike = None) -> list[JobQueue]:
        """Every named queue with its lock and job count."""
        return await self._call(self.sync_manager.list_queues, session)

    async def stats(self, *, session: AsyncSessionLike = None) -> QueueStats:
        """Counts by status, task and queue, and the oldest available job's age."""
        return await self._call(self.sync_manager.stats, session)

    async def now(self, *, session: AsyncSessionLike = None) -> datetime:
        """The database clock, which every queue decision uses."""
        return await self._call(self.sync_manager.now, session)


__all__ = ["AsyncJobManager", "AsyncSessionLike"]
