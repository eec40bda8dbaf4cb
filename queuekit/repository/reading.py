"""Reading jobs, history, queues and statistics."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    func,
    literal,
    select,
    union,
    union_all,
)

from queuekit.models import (
    claim_order,
    job_history,
    job_queues,
    job_status_is,
    jobs,
)
from queuekit.repository.base import RepositoryBase, history_window
from queuekit.rows import (
    history_from_row,
    job_from_row,
    job_queue_from_row,
)
from queuekit.types import (
    JOB_STATUSES,
    HistoryRecord,
    Job,
    JobQueue,
    JobStatus,
    QueueStats,
)


class Reading(RepositoryBase):
    """Read-only statements."""

    def get_job(self, conn: Connection, job_id: uuid.UUID) -> Job | None:
        """One job, or None."""
        row = self.run(conn, select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else job_from_row(row)

    def list_jobs(
        self,
        conn: Connection,
        *,
        status: str | None,
        task_identifier: str | None,
        queue_name: str | None,
        limit: int,
    ) -> list[Job]:
        """Jobs in claim order, filtered by derived status, task and queue."""
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            conditions.append(job_status_is(cast(JobStatus, status)))
        if task_identifier is not None:
            conditions.append(jobs.c.task_identifier == task_identifier)
        if queue_name is not None:
            conditions.append(jobs.c.queue_name == queue_name)
        statement = select(jobs).where(*conditions).order_by(*claim_order(jobs.c)).limit(limit)
        return [job_from_row(row) for row in self.run(conn, statement)]

    def job_history(self, conn: Connection, job_id: uuid.UUID) -> list[HistoryRecord]:
        """Every attempt of one job, newest first."""
        statement = (
            select(job_history)
            .where(job_history.c.job_id == job_id)
            .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def job_with_key(self, conn: Connection, job_key: str) -> Job | None:
        """The job holding ``job_key``, or None."""
        row = self.run(conn, select(jobs).where(jobs.c.job_key == job_key)).first()
        return None if row is None else job_from_row(row)

    def job_ids_between(
        self, conn: Connection, low: uuid.UUID, high: uuid.UUID, limit: int
    ) -> list[uuid.UUID]:
        """Ids of queued jobs and of jobs with history in ``[low, high]``, at most ``limit``.

        Every dialect orders stored UUIDs as their hex digits, so an id prefix
        is such a range (a prefix match would need a dialect-specific cast).
        """
        queued = select(jobs.c.id.label("id")).where(jobs.c.id.between(low, high))
        recorded = select(job_history.c.job_id.label("id")).where(
            job_history.c.job_id.between(low, high)
        )
        found = union(queued, recorded).subquery()
        statement = select(found.c.id).order_by(found.c.id).limit(limit)
        return list(self.run(conn, statement).scalars())

    def query_history(
        self,
        conn: Connection,
        *,
        from_time: datetime | None,
        to_time: datetime | None,
        task_identifier: str | None,
        status: str | None,
        limit: int,
    ) -> list[HistoryRecord]:
        """History rows by start time window, task and status, newest first."""
        conditions = history_window(from_time, to_time, task_identifier)
        if status is not None:
            conditions.append(job_history.c.status == status)
        statement = (
            select(job_history)
            .where(*conditions)
            .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
            .limit(limit)
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def list_queues(self, conn: Connection, names: Sequence[str] | None = None) -> list[JobQueue]:
        """Named queues with their job counts (counted now)."""
        counted = (
            select(func.count())
            .where(jobs.c.queue_name == job_queues.c.queue_name)
            .scalar_subquery()
        )
        statement = select(
            job_queues.c.queue_name,
            job_queues.c.locked_at,
            job_queues.c.locked_by,
            counted.label("job_count"),
        ).order_by(job_queues.c.queue_name)
        if names is not None:
            statement = statement.where(job_queues.c.queue_name.in_(list(names)))
        return [job_queue_from_row(row) for row in self.run(conn, statement)]

    def stats(self, conn: Connection) -> QueueStats:
        """Counts by status, per task and per named queue, and the oldest waiting job's age.

        Reads indexes, not the jobs table: all jobs per (task, queue) from
        ``ix_queuekit_jobs_task_queue``, locked ones from the ``locked_at``
        index, exhausted ones from their own index; available is the rest.
        The three counts are one statement, so they share one snapshot.
        """
        group = (jobs.c.task_identifier, jobs.c.queue_name)

        def counted(kind: str, *where: ColumnElement[bool]) -> Any:
            return (
                select(literal(kind).label("kind"), *group, func.count().label("n"))
                .where(*where)
                .group_by(*group)
            )

        statement = union_all(
            counted("all"),
            counted("locked", job_status_is("locked")),
            counted("exhausted", job_status_is("exhausted")),
        )
        counts: dict[tuple[str, str | None], dict[str, int]] = {}
        for kind, task, queue, n in self.run(conn, statement):
            counts.setdefault((task, queue), {"all": 0, "locked": 0, "exhausted": 0})[kind] = n

        def empty() -> dict[str, int]:
            return {name: 0 for name in JOB_STATUSES}

        by_status = empty()
        by_task: dict[str, dict[str, int]] = {}
        by_queue: dict[str, dict[str, Any]] = {}
        for (task, queue), kinds in counts.items():
            group_counts = {
                "available": kinds["all"] - kinds["locked"] - kinds["exhausted"],
                "locked": kinds["locked"],
                "exhausted": kinds["exhausted"],
            }
            targets = [by_status, by_task.setdefault(task, empty())]
            if queue is not None:
                targets.append(by_queue.setdefault(queue, {**empty(), "is_locked": False}))
            for target in targets:
                for name, n in group_counts.items():
                    target[name] += n
        queue_locks = select(job_queues.c.queue_name, job_queues.c.locked_at)
        for name, locked_at in self.run(conn, queue_locks):
            entry = by_queue.setdefault(name, {**empty(), "is_locked": False})
            entry["is_locked"] = locked_at is not None
        oldest = self.run(
            conn,
            select(self.dialect.ms_between(func.min(jobs.c.run_at), self.dialect.now())).where(
                job_status_is("available"), jobs.c.run_at <= self.dialect.now()
            ),
        ).scalar()
        age = None if oldest is None else timedelta(milliseconds=max(int(oldest), 0))
        return QueueStats(by_status, by_task, by_queue, age)
