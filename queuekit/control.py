"""What :class:`~queuekit.JobManager` offers to stop work and to see who does it.

Cancelling jobs, pausing and resuming task identifiers, and the registry of
running workers (``queuekit_workers``). Workers register when they start,
refresh their row with each heartbeat and delete it when they stop cleanly;
maintenance removes the rows of workers that died. A row seen within
:data:`LIVE_HEARTBEATS` heartbeat periods belongs to a live worker, so a
second worker with the same id refuses to start.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from queuekit import defaults, instrumentation
from queuekit.durations import Duration, duration_ms
from queuekit.errors import InvalidArgumentError, InvalidWorkerIdError
from queuekit.parts import ManagerPart
from queuekit.session import SessionLike, check_session
from queuekit.types import Job, TaskIdentifier, WorkerInfo
from queuekit.validation import (
    check_int,
    check_job_ids,
    check_names,
    check_worker_id,
)

#: How long a cancelled job's history row is kept (the claim's default retention).
DEFAULT_HISTORY_RETENTION = defaults.HISTORY_RETENTION
#: Heartbeat periods within which a worker's row counts as live.
LIVE_HEARTBEATS = 3


class Control(ManagerPart):
    """Cancel jobs, pause and resume tasks, and keep the registry of running workers."""

    # -- cancel and pause ------------------------------------------------------------

    def cancel_jobs(
        self, job_ids: Sequence[uuid.UUID], *, session: SessionLike = None
    ) -> list[Job]:
        """Delete jobs, waiting or running, each leaving a ``cancelled`` history row.

        A running job loses its lock as with ``permanently_fail_jobs`` (its
        attempt's row closes as ``cancelled``, its named queue is freed), then
        is deleted; its worker sees the lock gone. Unknown ids are ignored.
        Returns the cancelled jobs as they were, in the order given.
        """
        ids = check_job_ids(job_ids)
        check_session(session)
        if not ids:
            return []
        retention_ms = duration_ms(DEFAULT_HISTORY_RETENTION, name="history_retention")
        cancelled = self._run(
            session, lambda conn: self.repository.cancel_jobs(conn, ids, retention_ms)
        )
        hooks = instrumentation.hooks
        if hooks is not None and cancelled:
            hooks.cancelled(cancelled)
        return cancelled

    def pause_tasks(
        self, task_identifiers: Sequence[str], *, session: SessionLike = None
    ) -> list[TaskIdentifier]:
        """Make claims skip these tasks' jobs until resumed; enqueueing still works.

        Running jobs finish as usual. An identifier never seen before is
        created, paused. Returns the paused identifiers.
        """
        names = _task_names(task_identifiers)
        check_session(session)
        if not names:
            return []
        return self._run(session, lambda conn: self.repository.pause_tasks(conn, names))

    def resume_tasks(
        self, task_identifiers: Sequence[str], *, session: SessionLike = None
    ) -> list[TaskIdentifier]:
        """Let claims take these tasks' jobs again; returns the identifiers that exist."""
        names = _task_names(task_identifiers)
        check_session(session)
        if not names:
            return []
        return self._run(session, lambda conn: self.repository.resume_tasks(conn, names))

    # -- live workers -------------------------------------------------------------------

    def list_workers(self, *, session: SessionLike = None) -> list[WorkerInfo]:
        """Every registered worker (live ones, and dead ones maintenance has not removed yet)."""
        return self._run(session, self.repository.list_workers)

    def register_worker(
        self,
        worker_id: str,
        *,
        concurrency: int,
        heartbeat_interval: Duration,
        task_identifiers: Sequence[str] | None = None,
        hostname: str | None = None,
        pid: int | None = None,
        version: str | None = None,
    ) -> WorkerInfo:
        """Register a starting worker in a transaction of its own.

        Raises :class:`~queuekit.InvalidWorkerIdError` and writes nothing when
        a worker with this id was seen within ``LIVE_HEARTBEATS`` heartbeat
        periods; an older row belongs to a dead process and is taken over.
        """
        worker = check_worker_id(worker_id)
        slots = check_int(concurrency, name="concurrency", minimum=1)
        beat_ms = duration_ms(heartbeat_interval, name="heartbeat_interval", allow_zero=False)
        tasks = check_names(task_identifiers, name="task_identifiers")
        values = {
            "worker_id": worker,
            "hostname": (hostname or socket.gethostname())[:255],
            "pid": os.getpid() if pid is None else check_int(pid, name="pid", minimum=0),
            "task_identifiers": None if tasks is None else list(tasks),
            "concurrency": slots,
            "version": (version or _queuekit_version())[:64],
        }

        def work(conn: Connection) -> WorkerInfo:
            registered, info = self.repository.register_worker(
                conn, values, LIVE_HEARTBEATS * beat_ms
            )
            if not registered or info is None:
                raise InvalidWorkerIdError(_taken_message(worker, info))
            return info

        return self._run(None, work)

    def touch_worker(self, worker_id: str, *, session: SessionLike = None) -> bool:
        """Refresh a worker's ``last_seen`` on the database clock; False if its row is gone."""
        worker = check_worker_id(worker_id)
        return self._run(session, lambda conn: self.repository.touch_worker(conn, worker))

    def remove_worker(self, worker_id: str, *, session: SessionLike = None) -> bool:
        """Delete a stopping worker's row; False if there was none."""
        worker = check_worker_id(worker_id)
        return self._run(session, lambda conn: self.repository.remove_worker(conn, worker))

    def remove_dead_workers(self, *, older_than: Duration, session: SessionLike = None) -> int:
        """Delete the rows of workers not seen for ``older_than``; returns how many."""
        age_ms = duration_ms(older_than, name="older_than")
        return self._run(session, lambda conn: self.repository.remove_dead_workers(conn, age_ms))


def _task_names(task_identifiers: object) -> tuple[str, ...]:
    if task_identifiers is None:
        raise InvalidArgumentError("task_identifiers must be a list of task identifiers")
    names = check_names(task_identifiers, name="task_identifiers")
    assert names is not None
    return names


def _taken_message(worker_id: str, holder: WorkerInfo | None) -> str:
    where = "another process"
    if holder is not None:
        seen = f"{holder.last_seen:%Y-%m-%d %H:%M:%S}"
        where = f"pid {holder.pid} on {holder.hostname}, last seen {seen} UTC"
    return (
        f"worker id {worker_id!r} is held by a live worker ({where}); stop that worker or give "
        "this one another worker_id"
    )


def _queuekit_version() -> str:
    from queuekit import __version__

    return __version__


__all__ = ["DEFAULT_HISTORY_RETENTION", "LIVE_HEARTBEATS", "Control"]
