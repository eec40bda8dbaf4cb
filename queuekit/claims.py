"""What :class:`~queuekit.JobManager` offers workers: claiming jobs, recording attempts' ends.

A job's outcome is written only while the claim that produced it still
holds the job (same worker, same correlation id); anything else is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from queuekit import defaults, instrumentation
from queuekit.durations import Duration, duration_ms
from queuekit.errors import InvalidArgumentError
from queuekit.limits import check_text, document_problem
from queuekit.models import job_history
from queuekit.parts import ManagerPart
from queuekit.repository import FinishedJob, Outcome
from queuekit.session import SessionLike, check_session
from queuekit.types import Job, JobError, PartialSuccess, RetryPolicy
from queuekit.validation import check_int, check_names, check_values_of, check_worker_id


class Claims(ManagerPart):
    """Claim jobs, record their outcomes, keep their locks fresh, give them back."""

    retry: RetryPolicy

    # -- worker surface -----------------------------------------------------------

    def get_jobs(
        self,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None = None,
        forbidden_flags: Sequence[str] | None = None,
        batch_size: int = 1,
        history_retention: Duration = defaults.HISTORY_RETENTION,
        session: SessionLike = None,
        max_queued: int | None = None,
    ) -> list[Job]:
        """Claim up to ``batch_size`` jobs; each carries the ``correlation_id`` of its attempt.

        ``max_queued`` caps how many of them belong to named queues (None:
        no cap beyond ``batch_size``).
        """
        worker = check_worker_id(worker_id)
        tasks = check_names(task_identifiers, name="task_identifiers")
        flags = check_names(forbidden_flags, name="forbidden_flags")
        size = check_int(batch_size, name="batch_size", minimum=0)
        queued = None if max_queued is None else check_int(max_queued, name="max_queued", minimum=0)
        retention_ms = duration_ms(history_retention, name="history_retention")
        check_session(session)
        if size == 0 or tasks == ():
            return []
        claimed = self._run(
            session,
            lambda conn: self.repository.claim_jobs(
                conn,
                worker,
                task_identifiers=tasks,
                forbidden_flags=flags,
                batch_size=size,
                retention_ms=retention_ms,
                max_queued=queued,
            ),
            confirm=self.repository.claim_saved,
        )
        hooks = instrumentation.hooks
        if hooks is not None and claimed:
            hooks.claimed(claimed)
        return claimed

    def finish_jobs(
        self, worker_id: str, outcomes: Sequence[Outcome], *, session: SessionLike = None
    ) -> list[FinishedJob]:
        """Record a mix of outcomes in one transaction (what workers use to flush)."""
        worker = check_worker_id(worker_id)
        check_session(session)
        if not outcomes:
            return []

        def work(conn: Connection) -> list[FinishedJob]:
            return self.repository.finish_jobs(conn, worker, outcomes, self.retry)

        confirm = self.repository.outcomes_saved
        hooks = instrumentation.hooks
        if hooks is None:
            return self._run(session, work, confirm=confirm)
        with hooks.settle(outcomes):
            finished = self._run(session, work, confirm=confirm)
        hooks.settled(finished)
        return finished

    def complete_jobs(
        self,
        worker_id: str,
        jobs: Sequence[Job],
        execution_time_ms: int,
        *,
        session: SessionLike = None,
    ) -> list[Job]:
        """Complete claimed jobs; returns those this worker still owned."""
        elapsed = check_int(execution_time_ms, name="execution_time_ms", minimum=0)
        claimed = _check_jobs(jobs)
        outcomes = [Outcome(job, "completed", elapsed) for job in claimed]
        return [f.job for f in self.finish_jobs(worker_id, outcomes, session=session)]

    def fail_jobs(
        self,
        worker_id: str,
        job_errors: Sequence[JobError],
        execution_time_ms: int,
        *,
        session: SessionLike = None,
    ) -> list[Job]:
        """Fail claimed attempts: retry with backoff, or exhaust at the last attempt."""
        elapsed = check_int(execution_time_ms, name="execution_time_ms", minimum=0)
        checked = check_values_of(job_errors, JobError, name="job_errors")
        for item in checked:
            _check_jobs([item.job])
            if item.error is not None and not isinstance(item.error, BaseException | str):
                raise InvalidArgumentError("JobError.error must be an exception, a string or None")
        outcomes = [Outcome(e.job, "failed", elapsed, error=e.error) for e in checked]
        return [f.job for f in self.finish_jobs(worker_id, outcomes, session=session)]

    def report_partial_success(
        self,
        worker_id: str,
        job: Job,
        partial: PartialSuccess,
        execution_time_ms: int,
        *,
        session: SessionLike = None,
    ) -> Job | None:
        """Record a partly successful attempt: retried with backoff, or exhausted at the last."""
        elapsed = check_int(execution_time_ms, name="execution_time_ms", minimum=0)
        _check_jobs([job])
        _check_partial(partial)
        outcome = Outcome(job, "partial_success", elapsed, partial=partial)
        finished = self.finish_jobs(worker_id, [outcome], session=session)
        return finished[0].job if finished else None

    def heartbeat(
        self, worker_id: str, jobs: Sequence[Job], *, session: SessionLike = None
    ) -> list[Job]:
        """Keep the locks of claimed jobs fresh; returns those still held, in the given order.

        A job left out has lost its lock since it was claimed (failed,
        unlocked, reset, cancelled or re-claimed): its attempt should stop,
        and its outcome would be ignored.
        """
        worker = check_worker_id(worker_id)
        claimed = _check_jobs(jobs)
        correlations = [j.correlation_id for j in claimed if j.correlation_id]
        held = self._run(
            session, lambda conn: self.repository.heartbeat(conn, worker, correlations)
        )
        return [job for job in claimed if job.correlation_id in held]

    def release_jobs(
        self, worker_id: str, jobs: Sequence[Job], *, session: SessionLike = None
    ) -> list[Job]:
        """Give back claimed jobs that were never run; their attempt is not consumed."""
        worker = check_worker_id(worker_id)
        claimed = _check_jobs(jobs)
        return self._run(session, lambda conn: self.repository.release_jobs(conn, worker, claimed))


def _check_jobs(jobs: object) -> list[Job]:
    return check_values_of(jobs, Job, name="jobs", sequence_of="Job values returned by get_jobs")


def _check_partial(partial: object) -> None:
    if not isinstance(partial, PartialSuccess):
        raise InvalidArgumentError("partial must be a PartialSuccess")
    for name in ("completed_steps", "failed_steps"):
        steps = getattr(partial, name)
        if isinstance(steps, str) or not isinstance(steps, list | tuple):
            raise InvalidArgumentError(f"PartialSuccess.{name} must be a list of strings")
        if not all(isinstance(step, str) for step in steps):
            raise InvalidArgumentError(f"PartialSuccess.{name} must be a list of strings")
        _check_document(list(steps), f"PartialSuccess.{name}")
    if partial.retry_from_step is not None:
        check_text(
            partial.retry_from_step,
            name="PartialSuccess.retry_from_step",
            column=job_history.c.retry_from_step,
        )
    _check_document(partial.results, "PartialSuccess.results")


def _check_document(value: object, name: str) -> None:
    problem = document_problem(value)
    if problem is not None:
        path, message = problem
        raise InvalidArgumentError(f"{name} cannot be stored: {path} {message}")
