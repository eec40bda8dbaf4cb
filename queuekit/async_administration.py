"""AsyncJobManager's administration (cancel and pause included), maintenance and rate limits.

Each runs the synchronous :class:`~queuekit.manager.JobManager` method of the
same name through ``AsyncJobManager._call`` (the greenlet bridge).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from queuekit import defaults
from queuekit.durations import Duration
from queuekit.manager import JobManager
from queuekit.types import Job, JobQueue, RateLimit, TaskIdentifier, WorkerInfo

T = TypeVar("T")
AsyncSessionLike = AsyncSession | AsyncConnection | None


class AsyncAdministration:
    """Administer jobs and queues, run maintenance steps, manage rate limits (async)."""

    sync_manager: JobManager

    async def _call(
        self, method: Callable[..., T], session: AsyncSessionLike, *args: Any, **kwargs: Any
    ) -> T:
        raise NotImplementedError  # AsyncJobManager runs the method in the greenlet bridge

    # -- admin ------------------------------------------------------------------------

    async def reschedule_jobs(
        self,
        job_ids: Sequence[uuid.UUID],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        session: AsyncSessionLike = None,
    ) -> list[Job]:
        """Change when, in which order, or how often listed jobs run."""
        return await self._call(
            self.sync_manager.reschedule_jobs,
            session,
            job_ids,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
        )

    async def replay_failed_jobs(
        self,
        *,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        task_identifier: str | None = None,
        max_attempts: int | None = None,
        session: AsyncSessionLike = None,
    ) -> list[Job]:
        """Re-enqueue jobs whose final outcome was failure, atomically (flag ``replay``)."""
        return await self._call(
            self.sync_manager.replay_failed_jobs,
            session,
            from_time=from_time,
            to_time=to_time,
            task_identifier=task_identifier,
            max_attempts=max_attempts,
        )

    async def permanently_fail_jobs(
        self, job_ids: Sequence[uuid.UUID], reason: str, *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Exhaust listed jobs with ``reason`` (a running one loses its lock)."""
        return await self._call(self.sync_manager.permanently_fail_jobs, session, job_ids, reason)

    async def force_unlock_jobs(
        self, worker_ids: Sequence[str] | None = None, *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Unlock the jobs of these workers; None means every locked job, ``[]`` none."""
        return await self._call(self.sync_manager.force_unlock_jobs, session, worker_ids)

    async def force_unlock_queues(
        self, queue_names: Sequence[str] | None = None, *, session: AsyncSessionLike = None
    ) -> list[JobQueue]:
        """Free these named queues (None: all, ``[]``: none) with any job still running in them."""
        return await self._call(self.sync_manager.force_unlock_queues, session, queue_names)

    async def cancel_jobs(
        self, job_ids: Sequence[uuid.UUID], *, session: AsyncSessionLike = None
    ) -> list[Job]:
        """Delete jobs, waiting or running, each leaving a ``cancelled`` history row."""
        return await self._call(self.sync_manager.cancel_jobs, session, job_ids)

    async def pause_tasks(
        self, task_identifiers: Sequence[str], *, session: AsyncSessionLike = None
    ) -> list[TaskIdentifier]:
        """Make claims skip these tasks' jobs until resumed; enqueueing still works."""
        return await self._call(self.sync_manager.pause_tasks, session, task_identifiers)

    async def resume_tasks(
        self, task_identifiers: Sequence[str], *, session: AsyncSessionLike = None
    ) -> list[TaskIdentifier]:
        """Let claims take these tasks' jobs again."""
        return await self._call(self.sync_manager.resume_tasks, session, task_identifiers)

    async def list_workers(self, *, session: AsyncSessionLike = None) -> list[WorkerInfo]:
        """Every registered worker."""
        return await self._call(self.sync_manager.list_workers, session)

    # -- maintenance ------------------------------------------------------------------

    async def reset_locked_jobs(
        self,
        *,
        lock_timeout: Duration = defaults.RESET_LOCK_TIMEOUT,
        session: AsyncSessionLike = None,
    ) -> int:
        """Unlock jobs locked longer than ``lock_timeout``; their attempts close as failed."""
        return await self._call(
            self.sync_manager.reset_locked_jobs, session, lock_timeout=lock_timeout
        )

    async def gc_job_history(self, *, session: AsyncSessionLike = None) -> int:
        """Delete history rows past their ``expires_at``."""
        return await self._call(self.sync_manager.gc_job_history, session)

    async def gc_job_queues(self, *, session: AsyncSessionLike = None) -> int:
        """Delete named queues with no job and no lock."""
        return await self._call(self.sync_manager.gc_job_queues, session)

    async def gc_task_identifiers(
        self, *, keep: Duration = defaults.TASK_IDENTIFIER_KEEP, session: AsyncSessionLike = None
    ) -> int:
        """Delete task identifiers unused for ``keep`` that have no schema and no job."""
        return await self._call(self.sync_manager.gc_task_identifiers, session, keep=keep)

    # -- rate limits --------------------------------------------------------------------

    async def register_rate_limit(
        self, key: str, capacity: int, interval: Duration, *, session: AsyncSessionLike = None
    ) -> RateLimit:
        """Create or change a token bucket of ``capacity`` jobs per ``interval``."""
        return await self._call(
            self.sync_manager.register_rate_limit, session, key, capacity, interval
        )

    async def refill_rate_limits(self, *, session: AsyncSessionLike = None) -> int:
        """Refill every bucket whose window has passed; returns how many."""
        return await self._call(self.sync_manager.refill_rate_limits, session)

    async def get_rate_limit(
        self, key: str, *, session: AsyncSessionLike = None
    ) -> RateLimit | None:
        """One bucket, or None."""
        return await self._call(self.sync_manager.get_rate_limit, session, key)
