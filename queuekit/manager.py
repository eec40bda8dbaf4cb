"""JobManager: the public API over one engine.

Every method checks its arguments before any statement runs, then works
either inside the caller's transaction (``session=`` a Session or a
Connection; never committed or rolled back here) or in a short transaction
of its own that it commits.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from queuekit import defaults, instrumentation
from queuekit.control import Control
from queuekit.dialects import check_server_version, support_for
from queuekit.durations import Duration, check_optional_time, duration_ms, parse_duration
from queuekit.errors import (
    InvalidArgumentError,
    PayloadValidationError,
    UnknownRateLimitError,
    translate_db_errors,
)
from queuekit.learning import Learned, Lessons
from queuekit.limits import check_text, document_problem
from queuekit.models import job_history, jobs
from queuekit.repository import FinishedJob, Outcome, Repository
from queuekit.session import (
    Confirm,
    SessionLike,
    Transactions,
    caller_connection,
    check_session,
    on_transaction_end,
    result_stands,
)
from queuekit.support import Support
from queuekit.types import (
    HISTORY_STATUSES,
    JOB_STATUSES,
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
)
from queuekit.validation import (
    NewJob,
    SchemaCache,
    check_int,
    check_job_ids,
    check_job_spec,
    check_name,
    check_names,
    check_required_name,
    check_worker_id,
    compile_schema,
    schema_errors,
)

T = TypeVar("T")

#: Rows one maintenance transaction handles at most, so huge backlogs never
#: make one giant transaction.
MAINTENANCE_BATCH = 1000


class JobManager(Control, Support):
    """Enqueue, claim, finish and administer jobs stored in ``bind``'s database.

    Cancelling, pausing and the worker registry come from :class:`~queuekit.control.Control`;
    the internal methods queuekit's worker, scheduler, CLI and dashboard use come from
    :class:`~queuekit.support.Support`.
    """

    def __init__(
        self,
        bind: Engine,
        *,
        retry: RetryPolicy | None = None,
        validate_payloads: bool = True,
        schema: str | None = None,
        schema_cache_ttl: Duration = "5 seconds",
        check_schema: bool = True,
        validate_formats: bool = True,
    ) -> None:
        if not isinstance(bind, Engine):
            raise InvalidArgumentError(
                f"JobManager needs a sqlalchemy Engine, not {type(bind).__name__}"
            )
        if schema is not None:
            check_required_name(schema, name="schema")
        self.engine = bind
        self.retry = retry if retry is not None else RetryPolicy()
        self.validate_payloads = validate_payloads
        #: Whether payload schemas' ``format`` keywords are enforced (``email``, ``date``...).
        self.validate_formats = validate_formats
        self.schema = schema
        self.dialect = support_for(bind.dialect)
        self.dialect.prepare_engine(bind)
        self.repository = Repository(self.dialect, schema=schema)
        self.transactions = Transactions(
            bind, self.dialect.begin_transaction, self.dialect.check_own_transaction
        )
        self.schemas = SchemaCache(
            parse_duration(schema_cache_ttl).total_seconds(), formats=validate_formats
        )
        self._known_rate_limits: set[str] = set()
        self.lessons = Lessons(self._committed)
        self._lock = threading.Lock()
        if check_schema:
            self.check_database()

    def check_database(self, *, session: SessionLike = None) -> None:
        """Refuse old servers and unmigrated or out-of-date schemas.

        With ``session=`` the check reads through the caller's connection (it
        writes nothing), so it never waits for a lock the caller holds, such
        as SQLite's write lock taken by the caller's open transaction.
        """
        from queuekit import migrations

        check_session(session)
        with translate_db_errors(), ExitStack() as stack:
            if session is None:
                conn = stack.enter_context(self.engine.connect())
            else:
                conn = caller_connection(session)
            check_server_version(conn)
            migrations.check(conn, schema=self.schema)

    def _run(
        self,
        session: SessionLike,
        work: Callable[[Connection], T],
        *,
        confirm: Confirm[T] | None = None,
    ) -> T:
        return self.transactions.run(session, work, confirm=confirm)

    def _read(self, session: SessionLike, work: Callable[[Connection], T]) -> T:
        """Run work that writes nothing (a lost COMMIT cannot matter to it)."""
        return self.transactions.run(session, work, confirm=result_stands)

    # -- enqueue ----------------------------------------------------------------

    def register_task(
        self, task_identifier: str, *, schema: dict[str, Any] | None, session: SessionLike = None
    ) -> TaskIdentifier:
        """Store, replace or (with None) remove the JSON Schema of a task's payloads."""
        identifier = check_required_name(task_identifier, name="task_identifier")
        check_session(session)
        validator = (
            None
            if schema is None
            else compile_schema(identifier, schema, formats=self.validate_formats)
        )
        repository = self.repository

        def work(conn: Connection) -> tuple[TaskIdentifier, int]:
            task = repository.register_task(conn, identifier, schema)
            return task, repository.schema_version(conn, identifier)

        if session is None:
            task, version = self._run(None, work)
            self.schemas.store(identifier, version, validator)
            return task
        self.schemas.begin_pending(identifier)
        try:
            task, _ = self._run(session, work)
        except BaseException:
            self.schemas.end_pending(identifier)
            raise
        on_transaction_end(session, lambda: self.schemas.end_pending(identifier))
        return task

    def get_task(
        self, task_identifier: str, *, session: SessionLike = None
    ) -> TaskIdentifier | None:
        """One task identifier with its schema, or None."""
        identifier = check_required_name(task_identifier, name="task_identifier")
        return self._read(session, lambda conn: self.repository.get_task(conn, identifier))

    def add_job(
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
        session: SessionLike = None,
    ) -> Job:
        """Validate the payload and enqueue one job."""
        spec = JobSpec(
            task_identifier,
            payload,
            queue_name=queue_name,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
            job_key=job_key,
            job_key_mode=job_key_mode,
            flags=flags,  # a bare string is refused by the checks, not split
            rate_limit_key=rate_limit_key,
        )
        return self.add_jobs([spec], session=session)[0]

    def add_jobs(self, specs: Sequence[JobSpec], *, session: SessionLike = None) -> list[Job]:
        """Validate every payload, then insert all jobs atomically; results in input order."""
        if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
            raise InvalidArgumentError("specs must be a sequence of JobSpec")
        for spec in specs:
            if not isinstance(spec, JobSpec):
                raise InvalidArgumentError(
                    f"specs must hold JobSpec values, not {type(spec).__name__}"
                )
        new_jobs = [check_job_spec(spec) for spec in specs]
        check_session(session)
        if not new_jobs:
            return []
        ids = [new_job.id for new_job in new_jobs]
        return self._enqueue(
            session,
            "add_jobs",
            lambda conn: new_jobs,
            confirm=lambda conn, _: self.repository.any_job_saved(conn, ids),
        )

    def _enqueue(
        self,
        session: SessionLike,
        operation: str,
        build: Callable[[Connection], Sequence[NewJob]],
        *,
        confirm: Confirm[list[Job]] | None = None,
    ) -> list[Job]:
        """Check and insert the jobs ``build`` makes; traced when hooks are installed."""

        def work(conn: Connection, carrier: dict[str, str] | None = None) -> list[Job]:
            new_jobs = build(conn)
            if not new_jobs:
                return []
            self.prepare_enqueue(conn, new_jobs)
            if carrier is not None:
                new_jobs = [dataclasses.replace(j, trace_context=carrier) for j in new_jobs]
            return self.repository.add_jobs(conn, new_jobs)

        hooks = instrumentation.hooks
        if hooks is None:
            return self._run(session, work, confirm=confirm)
        with hooks.send(operation) as scope:
            added = self._run(session, lambda conn: work(conn, scope.carrier), confirm=confirm)
            scope.sent(added)
        return added

    def prepare_enqueue(self, conn: Connection, new_jobs: Sequence[NewJob]) -> None:
        """Checks that need the database but write nothing: schemas and rate-limit keys."""
        if self.validate_payloads:
            validators = self.schemas.validators_for(
                {j.task_identifier for j in new_jobs},
                lambda ids: self.repository.fetch_schemas(conn, ids),
                lambda: self.lessons.learning(conn).schemas,
                self.lessons.so_far(conn),
            )
            for new_job in new_jobs:
                validator = validators.get(new_job.task_identifier)
                if validator is None:
                    continue
                errors = schema_errors(validator, new_job.payload)
                if errors:
                    raise PayloadValidationError(new_job.task_identifier, errors, new_job.payload)
        keys = {j.rate_limit_key for j in new_jobs if j.rate_limit_key is not None}
        unknown = keys - self._known_rate_limits
        learned = self.lessons.so_far(conn) if unknown else None
        if learned is not None:
            unknown -= learned.rate_limit_keys
        if unknown:
            found = self.repository.known_rate_limit_keys(conn, sorted(unknown))
            if found:
                self.lessons.learning(conn).rate_limit_keys.update(found)
            missing = sorted(unknown - found)
            if missing:
                raise UnknownRateLimitError(
                    f"unknown rate_limit_key {missing[0]!r}: register it first with "
                    "register_rate_limit(key, capacity, interval)"
                )

    def _committed(self, learned: Learned) -> None:
        """Keep what a committed transaction taught."""
        with self._lock:
            self._known_rate_limits |= learned.rate_limit_keys
        self.schemas.keep(learned.schemas)

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
        if isinstance(job_errors, str | bytes) or not isinstance(job_errors, Sequence):
            raise InvalidArgumentError("job_errors must be a sequence of JobError")
        for item in job_errors:
            if not isinstance(item, JobError):
                raise InvalidArgumentError(
                    f"job_errors must hold JobError values, not {type(item).__name__}"
                )
            _check_jobs([item.job])
            if item.error is not None and not isinstance(item.error, BaseException | str):
                raise InvalidArgumentError("JobError.error must be an exception, a string or None")
        outcomes = [Outcome(e.job, "failed", elapsed, error=e.error) for e in job_errors]
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

    def _batched(self, session: SessionLike, step: Callable[[Connection, int], int]) -> int:
        """Repeat a bounded maintenance step, one transaction each, until it finds nothing."""
        check_session(session)
        total = 0
        while True:
            done = self._run(session, lambda conn: step(conn, MAINTENANCE_BATCH))
            total += done
            if done < MAINTENANCE_BATCH:
                return total

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


def _check_jobs(jobs: object) -> list[Job]:
    if isinstance(jobs, str | bytes) or not isinstance(jobs, Sequence):
        raise InvalidArgumentError("jobs must be a sequence of Job values returned by get_jobs")
    for job in jobs:
        if not isinstance(job, Job):
            raise InvalidArgumentError(f"jobs must hold Job values, not {type(job).__name__}")
    return list(jobs)


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


__all__ = ["JobManager"]
