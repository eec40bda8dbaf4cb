"""Claiming: strict named queues, exact rate limits, a constant statement count."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    or_,
    select,
    update,
)

from queuekit.models import claim_key, job_history, job_queues, jobs, rate_limits
from queuekit.repository.base import CLAIM_ROUNDS
from queuekit.repository.claim_statements import ClaimStatements
from queuekit.rows import job_from_row
from queuekit.types import Job


class Claim(ClaimStatements):
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
        earlier: dict[uuid.UUID, Job] = {}  # locked by the one-statement first round
        if self.dialect.writes_in_ctes:
            rows = self._plain_claim(
                conn,
                worker_id,
                task_identifiers,
                forbidden_flags,
                batch_size,
                retention_ms,
                max_queued,
            )
            earlier = {
                row.id: job_from_row(row, with_correlation=True)
                for row in rows
                if row.correlation_id is not None
            }
            if len(earlier) == len(rows):
                return list(earlier.values())
            first = rows  # some candidates fell out, or have a key: rounds follow
        for round_number in range(CLAIM_ROUNDS):
            wanted = batch_size - len(chosen)
            further: ColumnElement[bool] | None = None
            if round_number > 0:
                closed_keys |= {k for k, (tokens, _) in buckets.items() if spent[k] >= tokens}
                further = self._further_candidates(seen, closed_queues, closed_keys)
            if max_queued is not None and len(taken_queues) >= max_queued:
                plain = jobs.c.queue_name.is_(None)
                further = plain if further is None else and_(further, plain)
            if first is not None:  # the first round's candidates and free queues, locked
                candidates, first = first, None
                free: set[str] | None = {
                    c.queue_name
                    for c in candidates
                    if c.queue_free or (c.id in earlier and c.queue_name is not None)
                }
                self.ensure_queues(conn, {c.queue_name for c in candidates if c.queue_missing})
            else:
                candidates = self._claim_candidates(
                    conn, task_identifiers, forbidden_flags, wanted, further
                )
                free = None
            seen += [c.id for c in candidates]
            new_queues = {c.queue_name for c in candidates if c.queue_name is not None}
            new_queues -= free_queues | closed_queues
            if free is None:
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
                if candidate.id in earlier:  # chosen and locked by the first statement
                    chosen.append(candidate)
                    if queue is not None:
                        taken_queues.add(queue)
                        closed_queues.add(queue)
                    continue
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
        later = sorted((c for c in chosen if c.id not in earlier), key=claim_key)
        if not later:
            return list(earlier.values())
        queues = taken_queues - {job.queue_name for job in earlier.values()}
        claimed = list(earlier.values()) + self._lock_jobs(
            conn, worker_id, later, queues, retention_ms
        )
        return sorted(claimed, key=claim_key)

    def claim_plain_jobs(
        self,
        conn: Connection,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        retention_ms: int,
        max_queued: int | None,
    ) -> tuple[list[Job], bool]:
        """The claim's first statement alone (dialects that write in CTEs): what it locked.

        Also whether that is the whole claim: not when some candidates fell
        out or have a rate-limit key, which need the rounds of
        :meth:`claim_jobs` (the jobs it did lock are claimed all the same:
        never drop them). Being one statement, it may run in autocommit (one
        round trip).
        """
        rows = self._plain_claim(
            conn,
            worker_id,
            task_identifiers,
            forbidden_flags,
            batch_size,
            retention_ms,
            max_queued,
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
        max_queued: int | None,
    ) -> list[Any]:
        """Run the one-statement first round: locked jobs, and candidates left for the rounds."""
        statement = self._plain_claim_statement(
            task_identifiers, forbidden_flags, plain_only=max_queued == 0
        )
        values = {
            "claim_limit": batch_size,
            "claim_max_queued": batch_size if max_queued is None else max_queued,
            "claim_worker": worker_id,
            "claim_retention_ms": retention_ms,
        }
        return list(self.run(conn, statement, values))

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
