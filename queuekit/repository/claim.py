"""Claiming: strict named queues, exact rate limits, a constant statement count."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)

from queuekit.models import (
    job_history,
    job_queues,
    jobs,
    rate_limits,
)
from queuekit.models import task_identifiers as task_table
from queuekit.repository.base import CLAIM_ROUNDS, RepositoryBase, chunks
from queuekit.rows import (
    job_from_row,
)
from queuekit.types import (
    Job,
)


class Claim(RepositoryBase):
    """Statements that lock jobs for a worker and open their history rows."""

    def claim_jobs(
        self,
        conn: Connection,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        retention_ms: int,
        max_queued: int | None = None,
    ) -> list[Job]:
        """Lock up to ``batch_size`` jobs for ``worker_id`` and open a history row for each.

        ``max_queued`` caps the jobs of named queues among them (a worker
        asks for no more than it can start now: a queued job waiting in its
        buffer would hold its whole queue).

        At most one job per named queue is taken, and only from queues nobody
        holds; no rate-limit key gets more jobs than its bucket has tokens.
        Each round row-locks (SKIP LOCKED) only as many candidates as are still
        wanted, so a claim never hides claimable jobs it will not take from
        concurrent claimers: the candidates that fall out (a queue's second job,
        a key short of tokens, a queue someone else holds) are ones nobody could
        claim now anyway. A few more rounds look past those. The statement
        count does not depend on ``batch_size``.
        """
        chosen: list[Any] = []
        seen: list[uuid.UUID] = []
        free_queues: set[str] = set()
        closed_queues: set[str] = set()  # taken by this claim, or held by another
        taken_queues: set[str] = set()
        buckets: dict[str, tuple[int, bool]] = {}
        closed_keys: set[str] = set()  # out of tokens, or locked by another claim
        spent: Counter[str] = Counter()
        first: list[Any] | None = None
        if self.dialect.writes_in_ctes:
            rows = self._plain_claim(
                conn,
                worker_id,
                task_identifiers,
                forbidden_flags,
                batch_size,
                retention_ms,
                plain_only=max_queued == 0,
            )
            if not rows or rows[0].correlation_id is not None:
                return [job_from_row(row, with_correlation=True) for row in rows]
            first = rows  # nothing was locked: some candidate is not a plain job
        for round_number in range(CLAIM_ROUNDS):
            wanted = batch_size - len(chosen)
            further: ColumnElement[bool] | None = None
            if round_number > 0:
                closed_keys |= {k for k, (tokens, _) in buckets.items() if spent[k] >= tokens}
                further = self._further_candidates(seen, closed_queues, closed_keys)
            if max_queued is not None and len(taken_queues) >= max_queued:
                plain = jobs.c.queue_name.is_(None)
                further = plain if further is None else and_(further, plain)
            if first is not None:  # the first round's candidates, locked already
                candidates, first = first, None
            else:
                candidates = self._claim_candidates(
                    conn, task_identifiers, forbidden_flags, wanted, further
                )
            seen += [c.id for c in candidates]
            new_queues = {c.queue_name for c in candidates if c.queue_name is not None}
            new_queues -= free_queues | closed_queues
            free = self._lock_free_queues(conn, sorted(new_queues))
            free_queues |= free
            closed_queues |= new_queues - free
            new_keys = {c.rate_limit_key for c in candidates if c.rate_limit_key is not None}
            new_keys -= buckets.keys() | closed_keys
            # The first round waits for buckets, in key order so that claims never
            # deadlock; later rounds skip the buckets another claim holds.
            locked = self._lock_buckets(conn, sorted(new_keys), skip_locked=round_number > 0)
            buckets.update(locked)
            if round_number > 0:
                closed_keys |= new_keys - locked.keys()
            for candidate in candidates:
                if len(chosen) == batch_size:
                    break
                queue, key = candidate.queue_name, candidate.rate_limit_key
                if queue is not None and (
                    queue not in free_queues
                    or queue in taken_queues
                    or (max_queued is not None and len(taken_queues) >= max_queued)
                ):
                    continue
                # A key whose bucket this claim could not lock (another claim
                # holds it) gives no token; taking the job would overrun it.
                if key is not None and (key not in buckets or spent[key] >= buckets[key][0]):
                    continue
                chosen.append(candidate)
                if queue is not None:
                    taken_queues.add(queue)
                    closed_queues.add(queue)
                if key is not None:
                    spent[key] += 1
            if len(chosen) == batch_size or len(candidates) < wanted:
                break
        self._spend_tokens(conn, buckets, spent)
        if not chosen:
            return []
        chosen.sort(key=lambda c: (c.priority, c.run_at, c.id))
        return self._lock_jobs(conn, worker_id, chosen, taken_queues, retention_ms)

    def claim_plain_jobs(
        self,
        conn: Connection,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        retention_ms: int,
        plain_only: bool,
    ) -> tuple[list[Job], bool]:
        """The claim's single statement alone (dialects that write in CTEs): what it locked.

        Also whether that is the whole claim: not when a candidate has a
        named queue or a rate-limit key, which need the rounds of
        :meth:`claim_jobs` (the jobs it did lock are claimed all the same:
        never drop them). Being one statement, it may run in autocommit (one
        round trip). ``plain_only``: look at jobs of no named queue only.
        """
        rows = self._plain_claim(
            conn,
            worker_id,
            task_identifiers,
            forbidden_flags,
            batch_size,
            retention_ms,
            plain_only=plain_only,
        )
        locked = [job_from_row(r, with_correlation=True) for r in rows if r.correlation_id]
        return locked, len(locked) == len(rows)

    def _plain_claim(
        self,
        conn: Connection,
        worker_id: str,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        retention_ms: int,
        *,
        plain_only: bool,
    ) -> list[Any]:
        """Run the plain claim statement: locked jobs, or the unlocked candidates."""
        statement = self._plain_claim_statement(
            task_identifiers, forbidden_flags, plain_only=plain_only
        )
        values = {
            "claim_limit": batch_size,
            "claim_worker": worker_id,
            "claim_retention_ms": retention_ms,
        }
        return list(self.run(conn, statement, values))

    def _plain_claim_statement(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        *,
        plain_only: bool,
    ) -> CompoundSelect[Any]:
        """The claim of plain jobs as one statement (one round trip), built once per filter.

        The candidate SELECT (row-locking, SKIP LOCKED) is a CTE that the
        UPDATE locking the jobs reads, and the history INSERT reads what the
        UPDATE returns. The UPDATE locks only when no candidate has a named
        queue or a rate-limit key: those need a queue or bucket row locked
        first, in the rounds of :meth:`claim_jobs`. Then the answer is the
        candidates (with NULL in the other columns), in claim order and
        still row-locked by this transaction: that first round needs no
        statement of its own. The limit, worker id and history retention are
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
        cached: CompoundSelect[Any] | None = self._statements.get(key)
        if cached is not None:
            return cached
        limit = bindparam("claim_limit", type_=Integer())
        further = jobs.c.queue_name.is_(None) if plain_only else None
        candidates = self.claim_candidates_statement(
            task_identifiers, forbidden_flags, limit, further
        )
        found = candidates.cte("candidates")
        special = select(found.c.id).where(
            or_(found.c.queue_name.is_not(None), found.c.rate_limit_key.is_not(None))
        )
        worker = bindparam("claim_worker", type_=jobs.c.locked_by.type)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(select(found.c.id)), ~exists(special))
            .values(self._claim_values(worker, None))
        )
        locked = statement.returning(*jobs.c).cte("locked")
        # The locked jobs, or else the candidates (other columns NULL); UNION ALL,
        # as a join of the two CTEs would be planned as a nested loop.
        unlocked = select(
            *(found.c[c.name] if c.name in found.c else null().label(c.name) for c in jobs.c)
        ).where(exists(special))
        # Ordered as it stands, not wrapped in a subquery that names every
        # column twice more: a shorter text is cheaper to send and convert.
        both = union_all(select(locked), unlocked)
        retention = bindparam("claim_retention_ms", type_=BigInteger())
        order = both.selected_columns
        answer = both.order_by(order.priority, order.run_at, order.id).add_cte(
            self._opened_history(locked, retention)
        )
        built: CompoundSelect[Any] = self._statements.setdefault(key, answer)
        return built

    def claim_saved(self, conn: Connection, claimed: Sequence[Job]) -> bool:
        """Whether a claim whose COMMIT was lost landed (its history rows exist).

        Locking the claimed jobs first waits for that transaction, should the
        server still be finishing it, so the answer is final.
        """
        if not claimed:
            return True  # nothing was locked: the empty result stands either way
        ids = sorted(job.id for job in claimed)
        self.run(conn, select(jobs.c.id).where(jobs.c.id.in_(ids)).with_for_update())
        opened = [job.correlation_id for job in claimed]
        found = select(job_history.c.id).where(job_history.c.id.in_(opened)).limit(1)
        return self.run(conn, found).first() is not None

    @staticmethod
    def _further_candidates(
        seen: Sequence[uuid.UUID], closed_queues: set[str], closed_keys: set[str]
    ) -> ColumnElement[bool]:
        """What a later claim round looks for: jobs not seen, in open queues, of open keys."""
        return and_(
            jobs.c.id.not_in(list(seen)),
            or_(jobs.c.queue_name.is_(None), jobs.c.queue_name.not_in(sorted(closed_queues))),
            or_(jobs.c.rate_limit_key.is_(None), jobs.c.rate_limit_key.not_in(sorted(closed_keys))),
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
            .order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=jobs)
        )

    def _claim_candidates(
        self,
        conn: Connection,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int,
        further: ColumnElement[bool] | None = None,
    ) -> list[Any]:
        statement = self.claim_candidates_statement(
            task_identifiers, forbidden_flags, limit, further
        )
        return list(self.run(conn, statement))

    def _lock_free_queues(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """Row-lock the named queues that nobody holds; return their names.

        A queue another claimer is locking right now is skipped, and one it
        locked meanwhile fails the re-checked ``locked_at IS NULL``.
        """
        if not names:
            return set()
        statement = (
            select(job_queues.c.queue_name)
            .where(job_queues.c.queue_name.in_(list(names)), job_queues.c.locked_at.is_(None))
            .order_by(job_queues.c.queue_name)
            .with_for_update(skip_locked=True)
        )
        free = set(self.run(conn, statement).scalars())
        unseen = sorted(set(names) - free)
        if unseen:
            # A queue row may be missing (removed by GC as its first job was
            # enqueued); recreate it so the job is claimable next time.
            present = select(job_queues.c.queue_name).where(job_queues.c.queue_name.in_(unseen))
            missing = set(unseen) - set(self.run(conn, present).scalars())
            if missing:
                self.ensure_queues(conn, missing)
        return free

    def _lock_buckets(
        self, conn: Connection, keys: Sequence[str], *, skip_locked: bool = False
    ) -> dict[str, tuple[int, bool]]:
        """Lock the buckets of ``keys`` (in key order); tokens each can give and if it refills."""
        if not keys:
            return {}
        due = rate_limits.c.next_refill_at <= self.dialect.now()
        statement = (
            select(rate_limits.c.key, rate_limits.c.capacity, rate_limits.c.available_tokens, due)
            .where(rate_limits.c.key.in_(list(keys)))
            .order_by(rate_limits.c.key)
            # NO KEY UPDATE (PostgreSQL): an enqueue's foreign-key check holds KEY SHARE
            # on the bucket until it commits, and must neither stall nor deadlock this.
            .with_for_update(skip_locked=skip_locked, key_share=True)
        )
        return {
            key: (capacity if refills else tokens, bool(refills))
            for key, capacity, tokens, refills in self.run(conn, statement)
        }

    def _spend_tokens(
        self, conn: Connection, buckets: Mapping[str, tuple[int, bool]], spent: Counter[str]
    ) -> None:
        """Refill due buckets and take the spent tokens, in one statement."""
        changed = [k for k, (_, refills) in buckets.items() if refills or spent[k]]
        if not changed:
            return
        now = self.dialect.now()
        refilled = [k for k in changed if buckets[k][1]]
        remaining = {k: buckets[k][0] - spent[k] for k in changed}
        values: dict[str, Any] = {
            "available_tokens": case(remaining, value=rate_limits.c.key),
        }
        if refilled:
            is_refilled = rate_limits.c.key.in_(refilled)
            values["last_refill_at"] = case((is_refilled, now), else_=rate_limits.c.last_refill_at)
            values["next_refill_at"] = case(
                (is_refilled, self.dialect.add_ms(now, rate_limits.c.interval_ms)),
                else_=rate_limits.c.next_refill_at,
            )
        self.run(conn, update(rate_limits).where(rate_limits.c.key.in_(changed)).values(values))

    def _lock_jobs(
        self,
        conn: Connection,
        worker_id: str,
        chosen: Sequence[Any],
        queues: set[str],
        retention_ms: int,
    ) -> list[Job]:
        now = self.dialect.now()
        ids = [c.id for c in chosen]
        statement = (
            update(jobs)
            .where(self.dialect.one_of(jobs.c.id, ids))
            .values(self._claim_values(worker_id, ids))
        )
        lock_queues = None
        if queues:
            lock_queues = (
                update(job_queues)
                .where(job_queues.c.queue_name.in_(sorted(queues)))
                .values(locked_at=now, locked_by=worker_id, updated_at=now)
            )
        if self.dialect.writes_in_ctes:
            rows = self._lock_and_open_history(conn, statement, retention_ms, lock_queues)
        else:
            rows = self._update_returning_jobs(conn, statement, ids)
            self._open_history(conn, ids, retention_ms)
            if lock_queues is not None:
                self.run(conn, lock_queues)
        return [job_from_row(rows[job_id], with_correlation=True) for job_id in ids]

    def _lock_and_open_history(
        self, conn: Connection, statement: Any, retention_ms: int, lock_queues: Any = None
    ) -> dict[uuid.UUID, Any]:
        """Lock the jobs and copy their history rows in one statement (one round trip).

        The UPDATE ... RETURNING feeds the history INSERT ... SELECT as a
        data-modifying CTE, which the database runs whether or not the outer
        SELECT reads it; so does ``lock_queues``, the UPDATE marking the
        claimed named queues locked (their rows are row-locked already).
        """
        locked = statement.returning(*jobs.c).cte("locked")
        claimed = select(locked).add_cte(self._opened_history(locked, retention_ms))
        if lock_queues is not None:
            claimed = claimed.add_cte(lock_queues.cte("locked_queues"))
        return {row.id: row for row in self.run(conn, claimed)}

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
            "locked_at": now,
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
