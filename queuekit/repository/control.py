"""Operators' control over work: cancelling jobs, pausing and resuming tasks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from queuekit.ids import uuid7
from queuekit.models import job_history, jobs, task_identifiers
from queuekit.repository.base import CANCELLED_MESSAGE, RepositoryBase, chunks
from queuekit.rows import job_from_row, task_identifier_from_row
from queuekit.types import Job, TaskIdentifier


class Control(RepositoryBase):
    """Statements that stop work from running: cancel jobs, pause and resume tasks."""

    def cancel_jobs(
        self, conn: Connection, job_ids: Sequence[uuid.UUID], retention_ms: int
    ) -> list[Job]:
        """Delete the listed jobs, leaving a ``cancelled`` history row for each.

        A running job's attempt row closes as ``cancelled`` and its named
        queue is freed; its worker finds the lock gone at its next heartbeat,
        and its late outcome matches no job. A waiting (or exhausted) job gains
        a new ``cancelled`` row. Unknown ids are ignored. Returns the jobs as
        they were when cancelled, in the order asked.
        """
        wanted = list(dict.fromkeys(job_ids))
        found = self._select_jobs(conn, wanted, locking=True)
        if not found:
            return []
        now = self.dialect.now()
        running = [row for row in found.values() if row.locked_at is not None]
        waiting = [row for row in found.values() if row.locked_at is None]
        if running:
            self._unlock_queues(conn, (row.queue_name for row in running))
            self.close_history_rows(
                conn,
                [row.correlation_id for row in running if row.correlation_id is not None],
                {"status": "cancelled", "completed_at": now, "error_message": CANCELLED_MESSAGE},
            )
        for part in chunks(waiting):
            rows = [self._cancelled_row(row, retention_ms) for row in part]
            self.run(conn, job_history.insert().values(rows))
        for ids in chunks(list(found)):
            self.run(conn, delete(jobs).where(jobs.c.id.in_(list(ids))))
        return [job_from_row(found[job_id]) for job_id in wanted if job_id in found]

    def _cancelled_row(self, row: Any, retention_ms: int) -> dict[str, Any]:
        """The history row of a job cancelled before (or between) its attempts."""
        now = self.dialect.now()
        marker = uuid7()
        return {
            "id": marker,
            "job_id": row.id,
            "correlation_id": marker,
            "task_identifier": row.task_identifier,
            "payload": row.payload,
            "queue_name": row.queue_name,
            "priority": row.priority,
            "flags": row.flags,
            "rate_limit_key": row.rate_limit_key,
            "worker_id": None,
            "status": "cancelled",
            "started_at": now,
            "completed_at": now,
            "attempt_number": row.attempts,
            "error_message": CANCELLED_MESSAGE,
            "created_at": now,
            "expires_at": self.dialect.add_ms(now, retention_ms),
        }

    def pause_tasks(self, conn: Connection, identifiers: Sequence[str]) -> list[TaskIdentifier]:
        """Mark task identifiers paused (creating their rows); an earlier pause time stays."""
        now = self.dialect.now()
        rows = [
            {"identifier": i, "created_at": now, "last_used": now, "paused_at": now}
            for i in sorted(set(identifiers))
        ]
        keep_first = {"paused_at": func.coalesce(task_identifiers.c.paused_at, now)}
        for part in chunks(rows):
            self.run(conn, self.dialect.upsert(task_identifiers, part, ["identifier"], keep_first))
        return self.tasks(conn, identifiers)

    def resume_tasks(self, conn: Connection, identifiers: Sequence[str]) -> list[TaskIdentifier]:
        """Clear the pause of task identifiers; unknown ones are ignored."""
        for part in chunks(sorted(set(identifiers))):
            self.run(
                conn,
                update(task_identifiers)
                .where(
                    task_identifiers.c.identifier.in_(list(part)),
                    task_identifiers.c.paused_at.is_not(None),
                )
                .values(paused_at=None),
            )
        return self.tasks(conn, identifiers)

    def tasks(self, conn: Connection, identifiers: Sequence[str]) -> list[TaskIdentifier]:
        """The rows of these task identifiers that exist, by identifier."""
        found: list[TaskIdentifier] = []
        for part in chunks(sorted(set(identifiers))):
            statement = (
                select(task_identifiers)
                .where(task_identifiers.c.identifier.in_(list(part)))
                .order_by(task_identifiers.c.identifier)
            )
            found += [task_identifier_from_row(row) for row in self.run(conn, statement)]
        return found
