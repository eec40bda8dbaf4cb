"""What :class:`~queuekit.JobManager` offers to read jobs, history, queues and the clock.

Reads write nothing, so a COMMIT lost after one never matters to it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from queuekit.durations import check_optional_time
from queuekit.errors import InvalidArgumentError
from queuekit.parts import ManagerPart
from queuekit.session import SessionLike
from queuekit.types import HISTORY_STATUSES, JOB_STATUSES, HistoryRecord, Job, JobQueue, QueueStats
from queuekit.validation import check_int, check_job_ids, check_name


class Inspection(ManagerPart):
    """Read jobs, their history, queues, statistics and the database clock."""

    # -- reading --------------------------------------------------------------------------

    def get_job(self, job_id: uuid.UUID, *, session: SessionLike = None) -> Job | None:
        """One job, or None (completed jobs are gone: see ``job_history``)."""
        ids = check_job_ids([job_id])
        return self._read(session, lambda conn: self.repository.get_job(conn, ids[0]))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        task_identifier: str | None = None,
        queue_name: str | None = None,
        limit: int = 100,
        session: SessionLike = None,
    ) -> list[Job]:
        """Jobs in claim order, filtered by status, task and queue."""
        if status is not None and status not in JOB_STATUSES:
            raise InvalidArgumentError(f"status must be one of {', '.join(JOB_STATUSES)}")
        task = check_name(task_identifier, name="task_identifier", optional=True)
        queue = check_name(queue_name, name="queue_name", optional=True)
        size = check_int(limit, name="limit", minimum=0)
        return self._read(
            session,
            lambda conn: self.repository.list_jobs(
                conn, status=status, task_identifier=task, queue_name=queue, limit=size
            ),
        )

    def job_history(self, job_id: uuid.UUID, *, session: SessionLike = None) -> list[HistoryRecord]:
        """Every attempt of a job, newest first."""
        ids = check_job_ids([job_id])
        return self._read(session, lambda conn: self.repository.job_history(conn, ids[0]))

    def query_history(
        self,
        *,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        task_identifier: str | None = None,
        status: str | None = None,
        limit: int = 100,
        session: SessionLike = None,
    ) -> list[HistoryRecord]:
        """History rows started within a window, by task and status, newest first."""
        start = check_optional_time(from_time, name="from_time")
        end = check_optional_time(to_time, name="to_time")
        if start is not None and end is not None and start > end:
            raise InvalidArgumentError("from_time must not be after to_time")
        if status is not None and status not in HISTORY_STATUSES:
            raise InvalidArgumentError(f"status must be one of {', '.join(HISTORY_STATUSES)}")
        task = check_name(task_identifier, name="task_identifier", optional=True)
        size = check_int(limit, name="limit", minimum=0)
        return self._read(
            session,
            lambda conn: self.repository.query_history(
                conn, from_time=start, to_time=end, task_identifier=task, status=status, limit=size
            ),
        )

    def list_queues(self, *, session: SessionLike = None) -> list[JobQueue]:
        """Every named queue with its lock and job count."""
        return self._read(session, self.repository.list_queues)

    def stats(self, *, session: SessionLike = None) -> QueueStats:
        """Counts by status, task and queue, and the oldest available job's age."""
        return self._read(session, self.repository.stats)

    def now(self, *, session: SessionLike = None) -> datetime:
        """The database clock, which every queue decision uses."""
        return self._read(session, self.repository.now)
