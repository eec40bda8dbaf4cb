"""What :class:`~queuekit.JobManager` offers operators and the maintenance loop.

Rescheduling, replaying, failing and unlocking jobs; lock resets and garbage
collection in bounded batches; rate-limit buckets.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from queuekit import defaults, instrumentation
from queuekit.durations import Duration, check_optional_time, duration_ms
from queuekit.errors import InvalidArgumentError
from queuekit.limits import check_text
from queuekit.models import jobs
from queuekit.parts import ManagerPart
from queuekit.session import SessionLike, check_session
from queuekit.types import Job, JobQueue, JobSpec, RateLimit
from queuekit.validation import (
    NewJob,
    check_int,
    check_job_ids,
    check_job_spec,
    check_name,
    check_names,
    check_required_name,
)


class Administration(ManagerPart):
    """Administer jobs and queues, run maintenance steps, manage rate limits."""

    # -- admin ------------------------------------------------------------------------

    def reschedule_jobs(
        self,
        job_ids: Sequence[uuid.UUID],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        session: SessionLike = None,
    ) -> list[Job]:
        """Change when, in which order, or how often listed jobs run."""
        ids = check_job_ids(job_ids)
        when = check_optional_time(run_at, name="run_at")
        order = None if priority is None else check_int(priority, name="priority")
        limit = (
            None
            if max_attempts is None
            else check_int(max_attempts, name="max_attempts", minimum=1)
        )
        check_session(session)
        if not ids or (when is None and order is None and limit is None):
            return []

        return self._run(
            session,
            lambda conn: self.repository.reschedule_jobs(
                conn, ids, run_at=when, priority=order, max_attempts=limit
            ),
        )

    def replay_failed_jobs(
        self,
        *,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        task_identifier: str | None = None,
        max_attempts: int | None = None,
        session: SessionLike = None,
    ) -> list[Job]:
        """Re-enqueue jobs whose final outcome was failure, atomically (flag ``replay``)."""
        start = check_optional_time(from_time, name="from_time")
        end = check_optional_time(to_time, name="to_time")
        if start is not None and end is not None and start > end:
            raise InvalidArgumentError("from_time must not be after to_time")
        task = check_name(task_identifier, name="task_identifier", optional=True)
        attempts = (
            defaults.MAX_ATTEMPTS
            if max_attempts is None
            else check_int(max_attempts, name="max_attempts", minimum=1)
        )
        check_session(session)

        def build(conn: Connection) -> list[NewJob]:
            failures = self.repository.replayable_failures(
                conn, from_time=start, to_time=end, task_identifier=task
            )
            if not failures:
                return []
            sources = self.repository.replay_sources(conn, failures)
            new_jobs = []
            for record in failures:
                source = sources[record.correlation_id]
                flags = [
                    *(source.flags or ()),
                    *(() if "replay" in (source.flags or ()) else ("replay",)),
                ]
                new_jobs.append(
                    check_job_spec(
                        JobSpec(
                            record.task_identifier,
                            record.payload,
                            queue_name=source.queue_name,
                            priority=source.priority,
                            max_attempts=attempts,
                            job_key=str(record.job_id),
                            job_key_mode="replace",
                            flags=tuple(flags),
                            rate_limit_key=source.rate_limit_key,
                        )
                    )
                )
            return new_jobs

        return self._enqueue(session, "replay", build)

    def permanently_fail_jobs(
        self, job_ids: Sequence[uuid.UUID], reason: str, *, session: SessionLike = None
    ) -> list[Job]:
        """Exhaust listed jobs with ``reason`` (a running one loses its lock)."""
        ids = check_job_ids(job_ids)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgumentError("reason must be a non-empty string")
        check_text(reason, name="reason", column=jobs.c.last_error)
        check_session(session)
        failed = self._run(
            session, lambda conn: self.repository.permanently_fail_jobs(conn, ids, reason)
        )
        hooks = instrumentation.hooks
        if hooks is not None and failed:
            hooks.exhausted(failed)
        return failed

    def force_unlock_jobs(
        self, worker_ids: Sequence[str] | None = None, *, session: SessionLike = None
    ) -> list[Job]:
        """Unlock the jobs of these workers; None means every locked job, ``[]`` none."""
        workers = check_names(worker_ids, name="worker_ids")
        check_session(session)
        if workers == ():
            return []
        return self._run(session, lambda conn: self.repository.force_unlock_jobs(conn, workers))

    def force_unlock_queues(
        self, queue_names: Sequence[str] | None = None, *, session: SessionLike = None
    ) -> list[JobQueue]:
        """Free these named queues (None: all, ``[]``: none) with any job still running in them."""
        names = check_names(queue_names, name="queue_names")
        check_session(session)
        if names == ():
            return []
        return self._run(session, lambda conn: self.repository.force_unlock_queues(conn, names))

    # -- maintenance --------------------------------------------------------------------

    def reset_locked_jobs(
        self, *, lock_timeout: Duration = defaults.RESET_LOCK_TIMEOUT, session: SessionLike = None
    ) -> int:
        """Unlock jobs locked longer than ``lock_timeout``; their attempts close as failed."""
        timeout = duration_ms(lock_timeout, name="lock_timeout")
        return self._batched(
            session, lambda conn, limit: self.repository.reset_locked_jobs(conn, timeout, limit)
        )

    def gc_job_history(self, *, session: SessionLike = None) -> int:
        """Delete history rows past their ``expires_at``."""
        return self._batched(session, self.repository.gc_job_history)

    def gc_job_queues(self, *, session: SessionLike = None) -> int:
        """Delete named queues with no job and no lock."""
        return self._batched(session, self.repository.gc_job_queues)

    def gc_task_identifiers(
        self, *, keep: Duration = defaults.TASK_IDENTIFIER_KEEP, session: SessionLike = None
    ) -> int:
        """Delete task identifiers unused for ``keep`` that have no schema and no job."""
        keep_ms = duration_ms(keep, name="keep")
        return self._batched(
            session, lambda conn, limit: self.repository.gc_task_identifiers(conn, keep_ms, limit)
        )

    # -- rate limits --------------------------------------------------------------------

    def register_rate_limit(
        self, key: str, capacity: int, interval: Duration, *, session: SessionLike = None
    ) -> RateLimit:
        """Create or change a token bucket of ``capacity`` jobs per ``interval``."""
        name = check_required_name(key, name="key")
        size = check_int(capacity, name="capacity", minimum=1)
        window = duration_ms(interval, name="interval", allow_zero=False)
        check_session(session)
        limit: RateLimit = self._run(
            session, lambda conn: self.repository.register_rate_limit(conn, name, size, window)
        )
        return limit

    def refill_rate_limits(self, *, session: SessionLike = None) -> int:
        """Refill every bucket whose window has passed; returns how many."""
        return self._run(session, self.repository.refill_rate_limits)

    def get_rate_limit(self, key: str, *, session: SessionLike = None) -> RateLimit | None:
        """One bucket, or None."""
        name = check_required_name(key, name="key")
        return self._read(session, lambda conn: self.repository.get_rate_limit(conn, name))
