"""Administration and maintenance: taking locks away, replay, reschedule, GC."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    or_,
    select,
    update,
)

from queuekit.errors import InvalidArgumentError
from queuekit.models import (
    job_history,
    job_queues,
    job_status_is,
    jobs,
    task_identifiers,
)
from queuekit.repository.base import (
    EXPIRED_LOCK_MESSAGE,
    FORCE_UNLOCK_MESSAGE,
    chunks,
    history_window,
)
from queuekit.repository.catalog import Catalog
from queuekit.repository.reading import Reading
from queuekit.rows import (
    history_from_row,
    job_from_row,
)
from queuekit.types import (
    HistoryRecord,
    Job,
    JobQueue,
)


class Admin(Catalog, Reading):
    """Statements that operators and the maintenance loop run."""

    def _take_locks(
        self, conn: Connection, rows: Sequence[Any], reason: str
    ) -> dict[uuid.UUID, Any]:
        """Unlock jobs someone else holds: free their queues, close their attempts as failed.

        A job at its last attempt becomes exhausted (status is derived).
        ``rows`` are locked job rows with ``id``, ``correlation_id`` and ``queue_name``.
        """
        if not rows:
            return {}
        now = self.dialect.now()
        ids = [row.id for row in rows]
        result: dict[uuid.UUID, Any] = {}
        for part in chunks(ids):
            statement = (
                update(jobs)
                .where(jobs.c.id.in_(list(part)))
                .values(
                    locked_at=None,
                    locked_by=None,
                    correlation_id=None,
                    revision=jobs.c.revision + 1,
                    updated_at=now,
                )
            )
            result.update(self._update_returning_jobs(conn, statement, part))
        self._unlock_queues(conn, (row.queue_name for row in rows))
        self.close_history_rows(
            conn,
            [row.correlation_id for row in rows if row.correlation_id is not None],
            {"status": "failed", "completed_at": now, "error_message": reason},
        )
        return result

    def _locked_rows(
        self,
        conn: Connection,
        condition: ColumnElement[bool],
        *,
        limit: int | None = None,
        skip_locked: bool = False,
    ) -> list[Any]:
        statement = (
            select(jobs.c.id, jobs.c.correlation_id, jobs.c.queue_name)
            .where(job_status_is("locked"), condition)
            .with_for_update(skip_locked=skip_locked)
        )
        if limit is None:
            statement = statement.order_by(jobs.c.id)
        else:
            # A bounded batch walks the locked_at index, oldest lock first. In id
            # order (or with id as a tie-break, which the index cannot give) every
            # batch would first read or sort all the locked jobs.
            statement = statement.order_by(jobs.c.locked_at).limit(limit)
        return list(self.run(conn, statement))

    def force_unlock_jobs(self, conn: Connection, worker_ids: Sequence[str] | None) -> list[Job]:
        """Unlock the jobs of these workers (None: every locked job)."""
        condition: ColumnElement[bool] = (
            jobs.c.locked_by.in_(list(worker_ids))
            if worker_ids is not None
            else jobs.c.id.is_not(None)
        )
        rows = self._locked_rows(conn, condition)
        unlocked = self._take_locks(conn, rows, FORCE_UNLOCK_MESSAGE)
        return [job_from_row(unlocked[row.id]) for row in rows]

    def force_unlock_queues(self, conn: Connection, names: Sequence[str] | None) -> list[JobQueue]:
        """Free these named queues (None: all locked ones) and unlock their running jobs."""
        condition: ColumnElement[bool] = job_queues.c.locked_at.is_not(None)
        if names is not None:
            condition = and_(condition, job_queues.c.queue_name.in_(list(names)))
        locked = list(
            self.run(
                conn,
                select(job_queues.c.queue_name)
                .where(condition)
                .order_by(job_queues.c.queue_name)
                .with_for_update(),
            ).scalars()
        )
        if not locked:
            return []
        running = self._locked_rows(conn, jobs.c.queue_name.in_(locked))
        self._take_locks(conn, running, FORCE_UNLOCK_MESSAGE)
        self._unlock_queues(conn, locked)
        return self.list_queues(conn, locked)

    def permanently_fail_jobs(
        self, conn: Connection, job_ids: Sequence[uuid.UUID], reason: str
    ) -> list[Job]:
        """Exhaust the listed jobs with ``reason``; a running one loses its lock and attempt."""
        if not job_ids:
            return []
        running = self._locked_rows(conn, jobs.c.id.in_(list(job_ids)))
        self._take_locks(conn, running, reason)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)))
            .values(
                attempts=jobs.c.max_attempts,
                last_error=reason,
                revision=jobs.c.revision + 1,
                updated_at=self.dialect.now(),
            )
        )
        rows = self._update_returning_jobs(conn, statement, list(job_ids))
        return [job_from_row(rows[i]) for i in job_ids if i in rows]

    def reschedule_jobs(
        self,
        conn: Connection,
        job_ids: Sequence[uuid.UUID],
        *,
        run_at: datetime | None,
        priority: int | None,
        max_attempts: int | None,
    ) -> list[Job]:
        """Change run_at, priority or max_attempts of listed jobs.

        Raises :class:`~queuekit.errors.InvalidArgumentError`, changing
        nothing, when a new ``max_attempts`` is below the attempts a listed
        job already made (``attempts <= max_attempts`` must hold).
        """
        rows = list(
            self.run(
                conn,
                select(jobs.c.id, jobs.c.attempts)
                .where(jobs.c.id.in_(list(job_ids)))
                .order_by(jobs.c.id)
                .with_for_update(),
            )
        )
        if not rows:
            return []
        if max_attempts is not None:
            worst = max(row.attempts for row in rows)
            if worst > max_attempts:
                raise InvalidArgumentError(
                    f"max_attempts={max_attempts} is below the {worst} attempts a listed job "
                    "already made; choose a max_attempts of at least that"
                )
        values: dict[str, Any] = {"revision": jobs.c.revision + 1, "updated_at": self.dialect.now()}
        if run_at is not None:
            values["run_at"] = run_at
        if priority is not None:
            values["priority"] = priority
        if max_attempts is not None:
            values["max_attempts"] = max_attempts
        ids = [row.id for row in rows]
        updated = self._update_returning_jobs(
            conn, update(jobs).where(jobs.c.id.in_(ids)).values(values), ids
        )
        return [job_from_row(updated[i]) for i in job_ids if i in updated]

    def replayable_failures(
        self,
        conn: Connection,
        *,
        from_time: datetime | None,
        to_time: datetime | None,
        task_identifier: str | None,
    ) -> list[HistoryRecord]:
        """Latest history rows of jobs whose final outcome was failure, in the window.

        The job must be exhausted or gone, and its newest history row ``failed``;
        the window applies to that row's ``started_at``.
        """
        newer = job_history.alias("newer")
        conditions: list[ColumnElement[bool]] = [
            job_history.c.status == "failed",
            ~exists().where(
                newer.c.job_id == job_history.c.job_id,
                or_(
                    newer.c.started_at > job_history.c.started_at,
                    and_(
                        newer.c.started_at == job_history.c.started_at,
                        newer.c.id > job_history.c.id,
                    ),
                ),
            ),
            ~exists().where(
                jobs.c.id == job_history.c.job_id, jobs.c.attempts < jobs.c.max_attempts
            ),
            *history_window(from_time, to_time, task_identifier),
        ]
        statement = (
            select(job_history)
            .where(*conditions)
            .order_by(job_history.c.started_at, job_history.c.id)
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def replay_sources(
        self, conn: Connection, records: Sequence[HistoryRecord]
    ) -> dict[uuid.UUID, Any]:
        """Queue name, priority, flags and rate-limit key each replayed job originally had."""
        statement = select(
            job_history.c.correlation_id,
            job_history.c.queue_name,
            job_history.c.priority,
            job_history.c.flags,
            job_history.c.rate_limit_key,
        ).where(job_history.c.correlation_id.in_([r.correlation_id for r in records]))
        return {row.correlation_id: row for row in self.run(conn, statement)}

    def reset_locked_jobs(self, conn: Connection, lock_timeout_ms: int, limit: int) -> int:
        """Unlock up to ``limit`` jobs whose lock is older than the timeout; returns how many.

        Also frees queues locked longer than the timeout with no locked job in them.
        """
        threshold = self.dialect.add_ms(self.dialect.now(), -lock_timeout_ms)
        rows = self._locked_rows(conn, jobs.c.locked_at <= threshold, limit=limit, skip_locked=True)
        self._take_locks(conn, rows, EXPIRED_LOCK_MESSAGE)
        holder = exists().where(
            jobs.c.queue_name == job_queues.c.queue_name, job_status_is("locked")
        )
        self.run(
            conn,
            update(job_queues)
            .where(job_queues.c.locked_at <= threshold, ~holder)
            .values(locked_at=None, locked_by=None, updated_at=self.dialect.now()),
        )
        return len(rows)

    def gc_job_history(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` expired history rows; returns how many.

        Expiry counts from the claim, so a job running longer than its
        retention has an expired ``started`` row: that row is kept while its
        job still holds the claim, or the attempt would leave no history.
        """
        running = exists().where(
            jobs.c.correlation_id == job_history.c.correlation_id, job_status_is("locked")
        )
        expired = (
            select(job_history.c.id)
            .where(
                job_history.c.expires_at < self.dialect.now(),
                or_(job_history.c.status != "started", ~running),
            )
            .order_by(job_history.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(self.run(conn, expired).scalars())
        for part in chunks(ids):
            self.run(conn, delete(job_history).where(job_history.c.id.in_(list(part))))
        return len(ids)

    def gc_job_queues(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` unlocked queues that hold no job; returns how many."""
        has_jobs = exists().where(jobs.c.queue_name == job_queues.c.queue_name)
        empty = (
            select(job_queues.c.queue_name)
            .where(job_queues.c.locked_at.is_(None), ~has_jobs)
            .order_by(job_queues.c.queue_name)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        names = list(self.run(conn, empty).scalars())
        if names:
            self.run(
                conn,
                delete(job_queues).where(
                    job_queues.c.queue_name.in_(names), job_queues.c.locked_at.is_(None), ~has_jobs
                ),
            )
        return len(names)

    def gc_task_identifiers(self, conn: Connection, keep_ms: int, limit: int) -> int:
        """Delete up to ``limit`` identifiers unused for ``keep_ms``.

        Only those with no schema, no job and no pause go.
        """
        has_jobs = exists().where(jobs.c.task_identifier == task_identifiers.c.identifier)
        stale = (
            select(task_identifiers.c.identifier)
            .where(
                task_identifiers.c.last_used < self.dialect.add_ms(self.dialect.now(), -keep_ms),
                task_identifiers.c.payload_schema.is_(None),
                task_identifiers.c.paused_at.is_(None),
                ~has_jobs,
            )
            .order_by(task_identifiers.c.identifier)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        names = list(self.run(conn, stale).scalars())
        if names:
            self.run(
                conn,
                delete(task_identifiers).where(
                    task_identifiers.c.identifier.in_(names),
                    task_identifiers.c.paused_at.is_(None),
                    ~has_jobs,
                ),
            )
            self.forget_touches()
        return len(names)
