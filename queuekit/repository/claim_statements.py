"""Claim statements: what is claimable, the candidate query, the one-statement claim, history rows.

The statements a claim sends are built here; :mod:`queuekit.repository.claim`
runs them in rounds. On PostgreSQL the first round is one statement
(:meth:`ClaimStatements._plain_claim_statement`) that also locks what it
can take without a rate-limit bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)

from queuekit.models import claim_order, job_history, job_queues, jobs, rate_limits
from queuekit.models import task_identifiers as task_table
from queuekit.repository.base import RepositoryBase, chunks


class ClaimStatements(RepositoryBase):
    """The statements of a claim, built (and cached where they take bind parameters)."""

    def _plain_claim_statement(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        *,
        plain_only: bool,
    ) -> Select[Any]:
        """The claim of plain jobs as one statement (one round trip), built once per filter.

        The candidate SELECT (row-locking, SKIP LOCKED) is a CTE that the
        UPDATE locking the jobs reads, and the history INSERT reads what the
        UPDATE returns. The UPDATE locks only when no candidate has a named
        queue or a rate-limit key: those need a queue or bucket row locked
        first, in the rounds of :meth:`claim_jobs`. Then the answer is the
        candidates (with NULL in the other columns), in claim order and
        still row-locked by this transaction, each with ``queue_free`` (its
        named queue's row is free and now row-locked here, as
        :meth:`_lock_free_queues` does) and ``queue_missing`` (the queue has
        no row): that first round needs no statement of its own, nor one to
        lock its queues. The limit, worker id and history retention are
        bind parameters (``claim_limit``, ``claim_worker``,
        ``claim_retention_ms``), so a worker builds this once, not per claim.
        """
        key = (
            "plain claim",
            None if task_identifiers is None else tuple(task_identifiers),
            tuple(forbidden_flags or ()),
            plain_only,
            self.dialect.clock_offset_ms,
        )
        cached: Select[Any] | None = self._statements.get(key)
        if cached is not None:
            return cached
        limit = bindparam("claim_limit", type_=Integer())
        max_queued = bindparam("claim_max_queued", type_=Integer())
        further = jobs.c.queue_name.is_(None) if plain_only else None
        candidates = self.claim_candidates_statement(
            task_identifiers, forbidden_flags, limit, further
        )
        found = candidates.cte("candidates")
        # The candidates' named queues that nobody holds, row-locked (SKIP LOCKED,
        # ``locked_at`` re-checked) as :meth:`_lock_free_queues` does.
        free = (
            select(job_queues.c.queue_name)
            .where(
                job_queues.c.queue_name.in_(select(found.c.queue_name)),
                job_queues.c.locked_at.is_(None),
            )
            .with_for_update(skip_locked=True)
            .cte("free_queues")
        )
        chosen = self._chosen_candidates(found, free, max_queued)
        keyed = select(found.c.id).where(found.c.rate_limit_key.is_not(None))
        worker = bindparam("claim_worker", type_=jobs.c.locked_by.type)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(select(chosen.c.id)), ~exists(keyed))
            .values(self._claim_values(worker, None))
        )
        locked = statement.returning(*jobs.c).cte("locked")
        now = self.dialect.now()
        lock_queues = (
            update(job_queues)
            .where(job_queues.c.queue_name.in_(select(locked.c.queue_name)))
            .values(locked_at=now, locked_by=worker, updated_at=now)
        )
        present = exists().where(job_queues.c.queue_name == found.c.queue_name)
        # The locked jobs, and the candidates left (other columns NULL) with their
        # queue's state; UNION ALL, as a join of the two CTEs would be planned as
        # a nested loop.
        unlocked = select(
            *(found.c[c.name] if c.name in found.c else null().label(c.name) for c in jobs.c),
            found.c.queue_name.in_(select(free.c.queue_name)).label("queue_free"),
            and_(found.c.queue_name.is_not(None), ~present).label("queue_missing"),
        ).where(found.c.id.not_in(select(locked.c.id)))
        nothing = null().label("queue_free"), null().label("queue_missing")
        both = union_all(select(locked, *nothing), unlocked).subquery("claimed")
        retention = bindparam("claim_retention_ms", type_=BigInteger())
        answer = (
            select(both)
            .order_by(*claim_order(both.c))
            .add_cte(self._opened_history(locked, retention))
            .add_cte(lock_queues.cte("locked_queues"))
        )
        built: Select[Any] = self._statements.setdefault(key, answer)
        return built

    @staticmethod
    def _chosen_candidates(found: Any, free: Any, max_queued: BindParameter[int]) -> Any:
        """The candidates a claim takes when none has a rate-limit key, as its rounds would.

        Every plain job; of each free named queue, its first job in claim
        order; and named-queue jobs only up to ``max_queued``, counted in
        claim order.
        """
        order = claim_order(found.c)
        open_jobs = (
            select(
                *order,
                found.c.queue_name,
                func.row_number()
                .over(partition_by=found.c.queue_name, order_by=order)
                .label("in_queue"),
            )
            .where(
                or_(found.c.queue_name.is_(None), found.c.queue_name.in_(select(free.c.queue_name)))
            )
            .subquery("open_jobs")
        )
        first = (
            select(
                open_jobs.c.id,
                open_jobs.c.queue_name,
                func.count(open_jobs.c.queue_name)
                .over(order_by=claim_order(open_jobs.c))
                .label("queued"),
            )
            .where(or_(open_jobs.c.queue_name.is_(None), open_jobs.c.in_queue == 1))
            .subquery("first_jobs")
        )
        return (
            select(first.c.id)
            .where(or_(first.c.queue_name.is_(None), first.c.queued <= max_queued))
            .subquery("chosen")
        )

    def claimable(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
    ) -> ColumnElement[bool]:
        """The condition a job must meet to be claimed now."""
        now = self.dialect.now()
        locked_queue = exists().where(
            job_queues.c.queue_name == jobs.c.queue_name, job_queues.c.locked_at.is_not(None)
        )
        empty_bucket = exists().where(
            rate_limits.c.key == jobs.c.rate_limit_key,
            rate_limits.c.available_tokens <= 0,
            rate_limits.c.next_refill_at > now,
        )
        paused_task = exists().where(
            task_table.c.identifier == jobs.c.task_identifier,
            task_table.c.paused_at.is_not(None),
        )
        conditions: list[ColumnElement[bool]] = [
            jobs.c.locked_at.is_(None),
            jobs.c.attempts < jobs.c.max_attempts,
            jobs.c.run_at <= now,
            or_(jobs.c.queue_name.is_(None), ~locked_queue),
            or_(jobs.c.rate_limit_key.is_(None), ~empty_bucket),
            ~paused_task,
        ]
        if task_identifiers is not None:
            conditions.append(self.dialect.one_of(jobs.c.task_identifier, list(task_identifiers)))
        if forbidden_flags:
            conditions.append(~self.dialect.has_any_flag(jobs.c.flags, forbidden_flags))
        return and_(*conditions)

    def claimable_job_ids(
        self,
        conn: Connection,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int,
    ) -> list[uuid.UUID]:
        """Ids of up to ``limit`` jobs a worker with these filters could claim now."""
        statement = (
            select(jobs.c.id).where(self.claimable(task_identifiers, forbidden_flags)).limit(limit)
        )
        return list(self.run(conn, statement).scalars())

    def claim_candidates_statement(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int | BindParameter[int],
        further: ColumnElement[bool] | None = None,
    ) -> Select[Any]:
        """The claim's candidate query: claimable jobs in claim order, row-locked, SKIP LOCKED."""
        condition = self.claimable(task_identifiers, forbidden_flags)
        if further is not None:
            condition = and_(condition, further)
        return (
            select(
                jobs.c.id, jobs.c.queue_name, jobs.c.rate_limit_key, jobs.c.priority, jobs.c.run_at
            )
            .where(condition)
            .order_by(*claim_order(jobs.c))
            .limit(limit)
            .with_for_update(skip_locked=True, of=jobs)
        )

    def _opened_history(self, locked: Any, retention_ms: int | BindParameter[int]) -> Any:
        """The history INSERT ... SELECT of the rows a locking CTE returns, as a CTE."""
        columns = self._history_columns(locked.c, retention_ms)
        opened = job_history.insert().from_select(
            list(columns), select(*(value.label(name) for name, value in columns.items()))
        )
        return opened.cte("opened")

    def _claim_values(
        self, worker_id: str | BindParameter[str], ids: Sequence[uuid.UUID] | None
    ) -> dict[str, ColumnElement[Any] | str]:
        """What a claim sets on the jobs it locks (``ids``: where the database makes no uuid)."""
        now = self.dialect.now()
        return {
            "locked_at": self.dialect.lock_time(),
            "locked_by": worker_id,
            "correlation_id": self._new_correlations(ids or ()),
            "attempts": jobs.c.attempts + 1,
            "revision": jobs.c.revision + 1,
            "updated_at": now,
        }

    def _new_correlations(self, ids: Sequence[uuid.UUID]) -> ColumnElement[uuid.UUID]:
        """A fresh claim id per job: made by the database where it can, else sent per row."""
        made = self.dialect.new_uuid()
        if made is not None:
            return made
        return case({job_id: uuid.uuid4() for job_id in ids}, value=jobs.c.id)

    def _history_columns(
        self, source: Any, retention_ms: int | BindParameter[int]
    ) -> dict[str, ColumnElement[Any]]:
        """A ``started`` history row made of a just-locked job's columns and its claim clock."""
        waited = self.dialect.ms_between(source.run_at, source.locked_at)
        return {
            "id": source.correlation_id,
            "job_id": source.id,
            "correlation_id": source.correlation_id,
            "task_identifier": source.task_identifier,
            "payload": source.payload,
            "queue_name": source.queue_name,
            "priority": source.priority,
            "flags": source.flags,
            "rate_limit_key": source.rate_limit_key,
            "worker_id": source.locked_by,
            "status": literal("started"),
            "started_at": source.locked_at,
            "queue_time_ms": case(
                (waited < 0, literal(0)),
                (waited > 2**31 - 1, literal(2**31 - 1)),
                else_=waited,
            ),
            "attempt_number": source.attempts,
            "created_at": source.locked_at,
            "expires_at": self.dialect.add_ms(source.locked_at, retention_ms),
        }

    def _open_history(self, conn: Connection, ids: Sequence[uuid.UUID], retention_ms: int) -> None:
        """One ``started`` row per claimed job, copied by the database from the row it locked.

        INSERT ... SELECT keeps the payloads and per-row parameters off the
        wire: the history row is made of the job's columns and the claim's
        clock (``locked_at``), so it needs nothing from Python but the ids.
        """
        columns = self._history_columns(jobs.c, retention_ms)
        source = select(*(value.label(name) for name, value in columns.items()))
        for part in chunks(list(ids)):
            self.run(
                conn,
                job_history.insert().from_select(
                    list(columns), source.where(jobs.c.id.in_(list(part)))
                ),
            )
