"""Outcomes of claimed attempts: complete, fail, partial success, heartbeat, release."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Text,
    Uuid,
    bindparam,
    case,
    delete,
    literal,
    null,
    select,
    update,
)

from queuekit.models import (
    job_history,
    jobs,
)
from queuekit.repository.base import PARTIAL_AT_MAX_MESSAGE, FinishedJob, Outcome, error_text
from queuekit.repository.catalog import Catalog
from queuekit.rows import (
    job_from_row,
)
from queuekit.types import (
    Job,
    RetryPolicy,
)


class Outcomes(Catalog):
    """Statements that record how attempts ended, only for the claim's owner."""

    def heartbeat(
        self, conn: Connection, worker_id: str, correlation_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Refresh the lock time of running jobs; returns the claims still held.

        A claim missing from the answer lost its lock (failed, unlocked,
        reset, cancelled or re-claimed): its worker must stop the attempt.
        """
        if not correlation_ids:
            return set()
        owned = jobs.c.correlation_id.in_(list(correlation_ids)), jobs.c.locked_by == worker_id
        self.run(conn, update(jobs).where(*owned).values(locked_at=self.dialect.now()))
        # The rows just refreshed stay locked by this transaction, so this reads exactly them.
        return {row[0] for row in self.run(conn, select(jobs.c.correlation_id).where(*owned))}

    def release_jobs(self, conn: Connection, worker_id: str, claimed: Sequence[Job]) -> list[Job]:
        """Give back claimed jobs that were never run, refunding their attempt.

        Their history rows are removed: the attempt did not happen.
        """
        owned = self._owned(conn, worker_id, claimed)
        if not owned:
            return []
        ids = [row.id for row in owned]
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(
                locked_at=None,
                locked_by=None,
                correlation_id=None,
                attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
                revision=jobs.c.revision + 1,
                updated_at=self.dialect.now(),
            )
        )
        rows = self._update_returning_jobs(conn, statement, ids)
        self._unlock_queues(conn, {row.queue_name for row in owned if row.queue_name})
        correlations = [row.correlation_id for row in owned]
        self.run(
            conn,
            delete(job_history).where(
                job_history.c.correlation_id.in_(correlations), job_history.c.status == "started"
            ),
        )
        return [job_from_row(rows[job_id]) for job_id in ids]

    def held_jobs(self, conn: Connection, worker_id: str) -> list[Job]:
        """Every job ``worker_id`` holds, with the correlation id of its claim.

        A worker whose claim committed but whose connection broke before the
        answer arrived holds jobs it does not know about; this finds them.
        """
        statement = select(jobs).where(jobs.c.locked_by == worker_id).order_by(jobs.c.id)
        return [job_from_row(row, with_correlation=True) for row in self.run(conn, statement)]

    def _owned(self, conn: Connection, worker_id: str, claimed: Sequence[Job]) -> list[Any]:
        """Lock and return the rows of claimed jobs the worker still holds under that claim."""
        correlations = [job.correlation_id for job in claimed if job.correlation_id is not None]
        if not correlations:
            return []
        statement = (
            select(
                jobs.c.id,
                jobs.c.correlation_id,
                jobs.c.queue_name,
                jobs.c.attempts,
                jobs.c.max_attempts,
                jobs.c.task_identifier,
            )
            .where(jobs.c.correlation_id.in_(correlations), jobs.c.locked_by == worker_id)
            .order_by(jobs.c.id)
            .with_for_update()
        )
        return list(self.run(conn, statement))

    def finish_jobs(
        self,
        conn: Connection,
        worker_id: str,
        outcomes: Sequence[Outcome],
        retry: RetryPolicy,
        *,
        wake: bool = True,
    ) -> list[FinishedJob]:
        """Record how attempts ended: job change and history row in one transaction.

        Only jobs the worker still owns under the claim's correlation id are
        touched; the others are left out of the result. Completed jobs are
        deleted; failed and partially successful ones are rescheduled with
        backoff, or exhausted at their last attempt. Constant statement count.
        Freed named queues wake listening workers at commit, unless ``wake``
        is false (the caller claims for them first, see ``finish_and_claim``).
        """
        if self.dialect.writes_in_ctes and all(
            o.kind == "completed" and o.error is None and o.partial is None for o in outcomes
        ):
            return self._complete_in_one_statement(conn, worker_id, outcomes, wake=wake)
        if self.dialect.writes_in_ctes and all(o.kind == "failed" for o in outcomes):
            return self._fail_in_one_statement(conn, worker_id, outcomes, retry, wake=wake)
        owned = {
            row.correlation_id: row
            for row in self._owned(conn, worker_id, [o.job for o in outcomes])
        }
        mine: list[Outcome] = []
        owned_once: dict[Any, Any] = {}
        for outcome in outcomes:
            row = owned.get(outcome.job.correlation_id)
            # A claim counts once per call, and only for the job it was made on.
            if row is not None and row.id == outcome.job.id:
                mine.append(outcome)
                del owned[row.correlation_id]
                owned_once[row.correlation_id] = row
        owned = owned_once
        if not mine:
            return []
        now = self.dialect.now()
        done = [o for o in mine if o.kind == "completed"]
        retried = [o for o in mine if o.kind != "completed"]
        if done:
            self.run(conn, delete(jobs).where(jobs.c.id.in_([o.job.id for o in done])))
        new_rows: dict[uuid.UUID, Any] = {}
        exhausted: set[uuid.UUID] = set()
        if retried:
            delays: dict[uuid.UUID, int] = {}
            errors: dict[uuid.UUID, str | None] = {}
            for outcome in retried:
                row = owned[outcome.job.correlation_id]
                delays[row.id] = retry.delay_ms(row.attempts)
                if row.attempts >= row.max_attempts or outcome.exhaust:
                    exhausted.add(row.id)
                if outcome.kind == "failed":
                    errors[row.id] = error_text(outcome.error)[0]
                else:
                    errors[row.id] = PARTIAL_AT_MAX_MESSAGE if row.id in exhausted else None
            ids = list(delays)
            values: dict[str, Any] = {
                "last_error": case(errors, value=jobs.c.id),
                "run_at": self.dialect.add_ms(now, case(delays, value=jobs.c.id)),
                "locked_at": None,
                "locked_by": None,
                "correlation_id": None,
                "revision": jobs.c.revision + 1,
                "updated_at": now,
            }
            forced = [o.job.id for o in retried if o.exhaust]
            if forced:
                # As permanently_fail_jobs does: the attempt count reaches the limit.
                values["attempts"] = case(
                    (jobs.c.id.in_(forced), jobs.c.max_attempts), else_=jobs.c.attempts
                )
            statement = update(jobs).where(jobs.c.id.in_(ids)).values(values)
            new_rows = self._update_returning_jobs(conn, statement, ids)
        self._unlock_queues(
            conn,
            {owned[o.job.correlation_id].queue_name for o in mine} - {None},
            worker_id,
            wake=wake,
        )
        self._close_history(conn, mine)
        self.touch_tasks(conn, (o.job.task_identifier for o in mine))
        finished = []
        for outcome in mine:
            if outcome.kind == "completed":
                finished.append(FinishedJob(outcome, outcome.job, False))
            else:
                row = new_rows[outcome.job.id]
                finished.append(FinishedJob(outcome, job_from_row(row), row.id in exhausted))
        return finished

    def _complete_in_one_statement(
        self, conn: Connection, worker_id: str, outcomes: Sequence[Outcome], *, wake: bool = True
    ) -> list[FinishedJob]:
        """Delete owned jobs, close their history rows and free their queues: one round trip.

        The DELETE ... RETURNING decides ownership (the claim's job id,
        correlation id and worker, re-checked on the latest row version), and
        the history and queue UPDATEs read what it deleted as data-modifying
        CTEs, so nothing is read first.
        """
        mine: dict[Any, Outcome] = {}
        for outcome in outcomes:
            # A claim counts once per call, and only for the job it was made on.
            mine.setdefault(outcome.job.correlation_id, outcome)
        claims = [(o.job.id, correlation) for correlation, o in mine.items()]
        times = [o.execution_time_ms for o in mine.values()]
        queued = any(o.job.queue_name for o in mine.values())
        statement = self._completion_statement(queued=queued, wake=wake)
        params = {
            **self.dialect.pair_values("done_claims", claims),
            "done_worker": worker_id,
            "outcome_times_correlation_id": list(mine),
            "outcome_times_execution_time_ms": times,
        }
        rows = list(self.run(conn, statement, params))
        self.touch_tasks(conn, (row.task_identifier for row in rows))
        done = {row.correlation_id for row in rows}
        return [FinishedJob(o, o.job, False) for c, o in mine.items() if c in done]

    def _completion_statement(self, *, queued: bool, wake: bool) -> Any:
        """The completion flush, built once per shape; claims, worker and times are parameters.

        Only completed attempts use it (no error, no partial results), so the
        closed history rows get the same values but for their execution times.
        """
        key = ("completion", queued, wake, self.dialect.clock_offset_ms)
        cached = self._statements.get(key)
        if cached is not None:
            return cached
        worker = bindparam("done_worker", type_=jobs.c.locked_by.type)
        finished_jobs = (
            delete(jobs)
            .where(self.dialect.pair_of(jobs.c.id, jobs.c.correlation_id, [], key="done_claims"))
            .where(jobs.c.locked_by == worker)
            .returning(jobs.c.correlation_id, jobs.c.task_identifier, jobs.c.queue_name)
            .cte("finished_jobs")
        )
        # The execution times (the one value that differs per row of completed
        # attempts) come as a table of rows, so the statement text stays the same.
        times = self.dialect.rows_of(
            "outcome_times",
            {"correlation_id": (Uuid(), []), "execution_time_ms": (BigInteger(), [])},
            keyed=True,
        )
        closing: dict[str, Any] = {
            name: null()  # SQL NULL, as when the values are per row (a JSON None is 'null')
            for name in (
                "error_message",
                "error_stack",
                "completed_steps",
                "failed_steps",
                "retry_from_step",
                "partial_results",
            )
        }
        closing.update(
            completed_at=self.dialect.now(),
            status=literal("completed", job_history.c.status.type),
            execution_time_ms=times.c.execution_time_ms,
        )
        closed = (
            update(job_history)
            .where(
                job_history.c.correlation_id == finished_jobs.c.correlation_id,
                job_history.c.correlation_id == times.c.correlation_id,
                job_history.c.status == "started",
            )
            .values(closing)
        )
        statement = select(finished_jobs.c.correlation_id, finished_jobs.c.task_identifier)
        statement = statement.add_cte(closed.cte("closed_history"))
        if queued:
            # Only when a queue may be freed: the wake-up runs whether or not a row matches.
            freed = self._unlock_queues_statement(
                select(finished_jobs.c.queue_name), worker, wake=wake
            )
            statement = statement.add_cte(freed.cte("freed_queues"))
        return self._statements.setdefault(key, statement)

    def _fail_in_one_statement(
        self,
        conn: Connection,
        worker_id: str,
        outcomes: Sequence[Outcome],
        retry: RetryPolicy,
        *,
        wake: bool = True,
    ) -> list[FinishedJob]:
        """Reschedule owned jobs, close their history rows and free their queues: one round trip.

        As :meth:`_complete_in_one_statement`, with an UPDATE ... RETURNING in
        place of the DELETE. The backoff comes from the attempts the claim
        made (a held job's attempt count does not change); whether the
        attempt was the last one is decided by the row itself, whose
        ``max_attempts`` may have changed meanwhile.
        """
        mine: dict[Any, Outcome] = {}
        for outcome in outcomes:
            # A claim counts once per call, and only for the job it was made on.
            mine.setdefault(outcome.job.correlation_id, outcome)
        errors = [error_text(o.error) for o in mine.values()]
        given = self.dialect.rows_of(
            "failed_outcomes",
            {
                "job_id": (Uuid(), [o.job.id for o in mine.values()]),
                "correlation_id": (Uuid(), list(mine)),
                "delay_ms": (BigInteger(), [retry.delay_ms(o.job.attempts) for o in mine.values()]),
                "exhaust": (Boolean(), [o.exhaust for o in mine.values()]),
                "execution_time_ms": (BigInteger(), [o.execution_time_ms for o in mine.values()]),
                "error_message": (Text(), [message for message, _ in errors]),
                "error_stack": (Text(), [stack for _, stack in errors]),
            },
        )
        now = self.dialect.now()
        retried = (
            update(jobs)
            .where(
                jobs.c.id == given.c.job_id,
                jobs.c.correlation_id == given.c.correlation_id,
                jobs.c.locked_by == worker_id,
            )
            .values(
                last_error=given.c.error_message,
                run_at=self.dialect.add_ms(now, given.c.delay_ms),
                attempts=case((given.c.exhaust, jobs.c.max_attempts), else_=jobs.c.attempts),
                locked_at=None,
                locked_by=None,
                correlation_id=None,
                revision=jobs.c.revision + 1,
                updated_at=now,
            )
            .returning(*jobs.c, given.c.correlation_id.label("claim_id"))
            .cte("retried_jobs")
        )
        closed = (
            update(job_history)
            .where(
                job_history.c.correlation_id == retried.c.claim_id,
                job_history.c.correlation_id == given.c.correlation_id,
                job_history.c.status == "started",
            )
            .values(
                status="failed",
                completed_at=now,
                execution_time_ms=given.c.execution_time_ms,
                error_message=given.c.error_message,
                error_stack=given.c.error_stack,
                completed_steps=None,
                failed_steps=None,
                retry_from_step=None,
                partial_results=None,
            )
        )
        statement = select(retried).add_cte(closed.cte("closed_history"))
        if any(o.job.queue_name for o in mine.values()):
            # Only when a queue may be freed: the wake-up runs whether or not a row matches.
            freed = self._unlock_queues_statement(
                select(retried.c.queue_name), worker_id, wake=wake
            )
            statement = statement.add_cte(freed.cte("freed_queues"))
        rows = {row.claim_id: row for row in self.run(conn, statement)}
        self.touch_tasks(conn, (row.task_identifier for row in rows.values()))
        return [
            FinishedJob(o, job_from_row(row), row.attempts >= row.max_attempts)
            for c, o in mine.items()
            if (row := rows.get(c)) is not None
        ]

    def outcomes_saved(self, conn: Connection, finished: Sequence[FinishedJob]) -> bool:
        """Whether a ``finish_jobs`` whose COMMIT was lost landed (its attempts are closed).

        Locking the jobs first waits for that transaction, should the server
        still be finishing it. When it did not land, running it again is safe:
        it acts only on attempts the worker still owns.
        """
        if not finished:
            return True  # it changed nothing
        ids = sorted(f.outcome.job.id for f in finished)
        self.run(conn, select(jobs.c.id).where(jobs.c.id.in_(ids)).with_for_update())
        closed = select(job_history.c.id).where(
            job_history.c.id.in_([f.outcome.job.correlation_id for f in finished]),
            job_history.c.status != "started",
        )
        return self.run(conn, closed.limit(1)).first() is not None

    def _close_history(self, conn: Connection, outcomes: Sequence[Outcome]) -> None:
        """Close the ``started`` rows of these attempts with their outcomes, in one statement."""
        correlations = list({o.job.correlation_id for o in outcomes})
        self.close_history_rows(conn, correlations, self._closing_values(outcomes))

    def _closing_values(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """The values that close these attempts' history rows (CASEs over the correlation id)."""
        by_correlation = {o.job.correlation_id: o for o in outcomes}
        columns: dict[str, dict[Any, Any]] = {
            "status": {},
            "execution_time_ms": {},
            "error_message": {},
            "error_stack": {},
            "completed_steps": {},
            "failed_steps": {},
            "retry_from_step": {},
            "partial_results": {},
        }
        for correlation, outcome in by_correlation.items():
            message, stack = error_text(outcome.error) if outcome.kind == "failed" else (None, None)
            partial = outcome.partial
            row = {
                "status": outcome.kind,
                "execution_time_ms": outcome.execution_time_ms,
                "error_message": message,
                "error_stack": stack,
                "completed_steps": list(partial.completed_steps) if partial else None,
                "failed_steps": list(partial.failed_steps) if partial else None,
                "retry_from_step": partial.retry_from_step if partial else None,
                "partial_results": partial.results if partial else None,
            }
            for name, value in row.items():
                columns[name][correlation] = value
        values: dict[str, Any] = {"completed_at": self.dialect.now()}
        for name, per_row in columns.items():
            values[name] = self._per_row(job_history.c.correlation_id, job_history.c[name], per_row)
        return values
