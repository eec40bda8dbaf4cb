"""JobManager: the public API over one engine.

Every method checks its arguments before any statement runs, then works
either inside the caller's transaction (``session=`` a Session or a
Connection; never committed or rolled back here) or in a short transaction
of its own that it commits.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from queuekit import defaults, instrumentation
from queuekit.administration import Administration
from queuekit.claims import Claims
from queuekit.control import Control
from queuekit.dialects import check_server_version, support_for
from queuekit.durations import Duration, parse_duration
from queuekit.errors import (
    InvalidArgumentError,
    PayloadValidationError,
    UnknownRateLimitError,
    translate_db_errors,
)
from queuekit.inspection import Inspection
from queuekit.learning import Learned, Lessons
from queuekit.repository import Repository
from queuekit.schemas import SchemaCache, compile_schema, schema_errors
from queuekit.session import (
    Confirm,
    SessionLike,
    Transactions,
    caller_connection,
    check_session,
    on_transaction_end,
)
from queuekit.support import Support
from queuekit.types import Job, JobSpec, RetryPolicy, TaskIdentifier
from queuekit.validation import NewJob, check_job_spec, check_required_name, check_values_of

T = TypeVar("T")

#: Rows one maintenance transaction handles at most, so huge backlogs never
#: make one giant transaction.
MAINTENANCE_BATCH = 1000


class JobManager(Claims, Administration, Inspection, Control, Support):
    """Enqueue, claim, finish and administer jobs stored in ``bind``'s database.

    Each group of methods is a mixin: claiming and outcomes
    (:class:`~queuekit.claims.Claims`), administration, maintenance and rate
    limits (:class:`~queuekit.administration.Administration`), reading
    (:class:`~queuekit.inspection.Inspection`), cancelling, pausing and the
    worker registry (:class:`~queuekit.control.Control`), and the internal
    methods queuekit's worker, scheduler, CLI and dashboard use
    (:class:`~queuekit.support.Support`).
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
        self._filters_needing_rounds = set()
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
        checked = check_values_of(specs, JobSpec, name="specs")
        new_jobs = [check_job_spec(spec) for spec in checked]
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

    def _batched(self, session: SessionLike, step: Callable[[Connection, int], int]) -> int:
        """Repeat a bounded maintenance step, one transaction each, until it finds nothing."""
        check_session(session)
        total = 0
        while True:
            done = self._run(session, lambda conn: step(conn, MAINTENANCE_BATCH))
            total += done
            if done < MAINTENANCE_BATCH:
                return total

    def _committed(self, learned: Learned) -> None:
        """Keep what a committed transaction taught."""
        with self._lock:
            self._known_rate_limits |= learned.rate_limit_keys
        self.schemas.keep(learned.schemas)


__all__ = ["JobManager"]
