"""What :class:`~queuekit.JobManager` offers queuekit's own worker, scheduler, CLI and dashboard.

These methods are internal support, not part of the documented API: they
exist so that the worker, the cron scheduler, maintenance, the demo, the CLI
and the dashboard go through the manager (its transactions, retries and
error translation) instead of reaching into its repository. Each runs in one
transaction of the manager's own, as the code it replaced did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from queuekit import instrumentation
from queuekit.durations import Duration, duration_ms
from queuekit.parts import ManagerPart
from queuekit.repository import FinishedJob, Outcome
from queuekit.session import SessionLike
from queuekit.types import Job, JobSpec, RetryPolicy

#: A cron entry's state: when it became known, and the last slot fired (None: never).
CrontabState = tuple[datetime, datetime | None]
#: Given (known since, last slot fired, database now), the slot due now, or None.
DueSlot = Callable[[datetime, datetime | None, datetime], datetime | None]


class Support(ManagerPart):
    """Internal statements run for queuekit's worker, scheduler, CLI and dashboard."""

    retry: RetryPolicy
    get_jobs: Callable[..., list[Job]]  # JobManager's (Claims)
    #: Worker filters whose last claim took jobs of named queues or rate-limit keys.
    _filters_needing_rounds: set[tuple[tuple[str, ...] | None, tuple[str, ...]]]

    def add_jobs(self, specs: Sequence[JobSpec], *, session: SessionLike = None) -> list[Job]:
        raise NotImplementedError  # JobManager validates and enqueues

    # -- worker -----------------------------------------------------------------------

    def held_jobs(self, worker_id: str) -> list[Job]:
        """Jobs ``worker_id`` holds locked (to find claims whose answer was lost)."""
        return self._run(None, lambda conn: self.repository.held_jobs(conn, worker_id))

    def claim_for_worker(
        self,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        history_retention: Duration,
        max_queued: int | None,
    ) -> list[Job]:
        """The worker's claim: ``get_jobs``, in one round trip where it can.

        Where the claim of plain jobs is one statement (PostgreSQL), that
        statement runs alone in autocommit: no BEGIN, no COMMIT of its own.
        When candidates fell out of it or have a rate-limit key, ``get_jobs``
        claims the rest in a transaction (what the statement locked is
        claimed and kept); later claims with these filters go there directly
        while such jobs keep coming. A
        connection lost during the statement raises without a check of what
        it did: the worker then releases jobs held under its id that it does
        not know. The arguments are the worker's own, checked when it was made.
        """
        filters = (
            None if task_identifiers is None else tuple(task_identifiers),
            tuple(forbidden_flags or ()),
        )
        repository = self.repository
        alone = repository.dialect.writes_in_ctes and batch_size > 0
        alone = alone and (task_identifiers is None or len(task_identifiers) > 0)
        earlier: list[Job] = []
        if alone and filters not in self._filters_needing_rounds:
            retention_ms = duration_ms(history_retention, name="history_retention")
            earlier, whole = self.transactions.run_alone(
                lambda conn: repository.claim_plain_jobs(
                    conn,
                    worker_id,
                    task_identifiers=task_identifiers,
                    forbidden_flags=forbidden_flags,
                    batch_size=batch_size,
                    retention_ms=retention_ms,
                    max_queued=max_queued,
                )
            )
            hooks = instrumentation.hooks
            if hooks is not None and earlier:
                hooks.claimed(earlier)
            if whole:
                return earlier
        queued = sum(1 for job in earlier if job.queue_name is not None)
        jobs = self.get_jobs(
            worker_id,
            task_identifiers=task_identifiers,
            forbidden_flags=forbidden_flags,
            batch_size=batch_size - len(earlier),
            history_retention=history_retention,
            max_queued=None if max_queued is None else max(0, max_queued - queued),
        )
        if any(job.queue_name is not None or job.rate_limit_key is not None for job in jobs):
            self._filters_needing_rounds.add(filters)
        else:
            self._filters_needing_rounds.discard(filters)
        return earlier + jobs

    def claimable_job_ids(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int,
    ) -> list[uuid.UUID]:
        """Ids of up to ``limit`` jobs a worker with these filters could claim now."""
        return self._run(
            None,
            lambda conn: self.repository.claimable_job_ids(
                conn, task_identifiers, forbidden_flags, limit
            ),
        )

    def finish_and_claim(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        *,
        slots: int,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        history_retention: Duration,
        more: int = 0,
        more_queued: int = 0,
    ) -> tuple[list[FinishedJob], list[Job]]:
        """Record outcomes and claim for the slots of the named queues they freed: one transaction.

        What the worker's flusher calls when outcomes of named-queue jobs
        free slots it kept for their queues' next jobs (see
        ``Repository.finish_and_claim``). The arguments are the worker's own,
        checked when it was made. Tracing sees a settle and, when jobs were
        taken, a claim, as with ``finish_jobs`` and ``get_jobs``.
        """

        retention_ms = duration_ms(history_retention, name="history_retention")

        def work(conn: Connection) -> tuple[list[FinishedJob], list[Job]]:
            return self.repository.finish_and_claim(
                conn,
                worker_id,
                outcomes,
                self.retry,
                slots=slots,
                task_identifiers=task_identifiers,
                forbidden_flags=forbidden_flags,
                retention_ms=retention_ms,
                more=more,
                more_queued=more_queued,
            )

        def confirm(conn: Connection, result: tuple[list[FinishedJob], list[Job]]) -> bool:
            # The claim shares the settle's transaction: both landed or neither did.
            return self.repository.outcomes_saved(conn, result[0])

        hooks = instrumentation.hooks
        if hooks is None:
            return self._run(None, work, confirm=confirm)
        with hooks.settle(outcomes):
            finished, claimed = self._run(None, work, confirm=confirm)
        hooks.settled(finished)
        if claimed:
            hooks.claimed(claimed)
        return finished, claimed

    # -- cron slots -------------------------------------------------------------------

    def ensure_crontabs(self, identifiers: Sequence[str]) -> None:
        """Create the state rows of cron identifiers never seen before."""
        self._run(None, lambda conn: self.repository.ensure_crontabs(conn, identifiers))

    def crontab_states(
        self, identifiers: Sequence[str]
    ) -> tuple[datetime, dict[str, CrontabState]]:
        """The database clock and the known entries' states, read in one transaction."""

        def read(conn: Connection) -> tuple[datetime, dict[str, CrontabState]]:
            return self.repository.now(conn), self.repository.crontab_states(conn, identifiers)

        return self._run(None, read)

    def claim_due_slot(self, identifier: str, due: DueSlot) -> datetime | None:
        """Claim the slot ``due`` names for ``identifier``, once across all schedulers.

        Returns the slot this caller won, or None (nothing due, another
        scheduler took it, or the entry's state row was missing: it is created).
        """

        def claim(conn: Connection) -> datetime | None:
            repository = self.repository
            now = repository.now(conn)
            state = repository.crontab_states(conn, [identifier]).get(identifier)
            if state is None:
                repository.ensure_crontabs(conn, [identifier])
                return None
            known_since, last = state
            slot = due(known_since, last, now)
            if slot is None or not repository.claim_cron_slot(conn, identifier, last, slot):
                return None
            return slot

        return self._run(None, claim)

    def fire_cron_slot(
        self, identifier: str, previous: datetime | None, slot: datetime, spec: JobSpec
    ) -> Job | None:
        """Claim ``slot`` (compare-and-set on the last one fired) and enqueue ``spec`` with it.

        Both happen in one transaction, so a slot yields one job across every
        scheduler. None when another scheduler claimed the slot first.
        """

        def work(conn: Connection) -> Job | None:
            if not self.repository.claim_cron_slot(conn, identifier, previous, slot):
                return None
            return self.add_jobs([spec], session=conn)[0]

        return self._run(None, work)

    # -- CLI and dashboard --------------------------------------------------------------

    def job_with_key(self, job_key: str) -> Job | None:
        """The queued job holding ``job_key``, or None."""
        return self._run(None, lambda conn: self.repository.job_with_key(conn, job_key))

    def job_ids_between(self, low: uuid.UUID, high: uuid.UUID, limit: int) -> list[uuid.UUID]:
        """Up to ``limit`` job ids (queued or in history) between ``low`` and ``high``."""
        return self._run(None, lambda conn: self.repository.job_ids_between(conn, low, high, limit))

    def execute(self, conn: Connection, statement: Any) -> Any:
        """Execute a Core statement in ``conn`` with this manager's schema translation."""
        return self.repository.run(conn, statement)
