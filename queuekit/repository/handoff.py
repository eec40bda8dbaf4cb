"""Hand-off: a settle that frees named queues claims for the slots it freed, in one transaction.

A worker whose outcome frees a named queue has a slot free (the one the job
left) that it keeps for the queue's next job. Claiming in the settle's own
transaction, right after the release, saves a commit, a round trip and a
wait for another thread or worker to notice the release; the queue's next
job starts as soon as the outcome is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from queuekit.repository.base import FinishedJob, Outcome
from queuekit.repository.claim import Claim
from queuekit.repository.outcomes import Outcomes
from queuekit.types import Job, RetryPolicy


class Handoff(Claim, Outcomes):
    """Settle outcomes and claim for the slots of the queues they freed, in one transaction."""

    def finish_and_claim(
        self,
        conn: Connection,
        worker_id: str,
        outcomes: Sequence[Outcome],
        retry: RetryPolicy,
        *,
        slots: int,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        retention_ms: int,
        more: int = 0,
        more_queued: int = 0,
    ) -> tuple[list[FinishedJob], list[Job]]:
        """Record ``outcomes`` (as :meth:`finish_jobs`), then claim for the slots they freed.

        One claimed job per named queue the recorded outcomes freed, up to
        ``slots``: the slots their jobs left, which the worker kept for this;
        plus up to ``more`` jobs the worker wants anyway (its other idle slots
        and its prefetch), of which ``more_queued`` may be in named queues,
        so that it need not claim again right after. Nothing is claimed when
        no queue was freed. The claim is an ordinary one (:meth:`claim_jobs`):
        in claim order (priority, ``run_at``, id) across named-queue and plain
        jobs, so it
        takes the freed queue's next job when that job comes first and an
        earlier job otherwise; rate limits, paused tasks and the worker's
        filters apply, and each claimed job gets its ``started`` history row.
        The queues released above are free to this transaction alone until it
        commits (their rows stay locked by it), so the serialisation checks
        of the claim hold as for any other claimer.
        """
        wake_now = slots <= 0  # no claim follows: the release wakes workers as usual
        finished = self.finish_jobs(conn, worker_id, outcomes, retry, wake=wake_now)
        freed = {f.outcome.job.queue_name for f in finished} - {None}
        wanted = min(slots, len(freed))
        if wanted <= 0:
            return finished, []
        claimed = self.claim_jobs(
            conn,
            worker_id,
            task_identifiers=task_identifiers,
            forbidden_flags=forbidden_flags,
            batch_size=wanted + more,
            retention_ms=retention_ms,
            max_queued=wanted + more_queued,
        )
        self._wake_for(conn, freed - {job.queue_name for job in claimed})
        return finished, claimed

    def _wake_for(self, conn: Connection, left: set[str | None]) -> None:
        """Wake listening workers at commit if a freed queue was not taken again here.

        The release itself woke nobody: a queue this claim took again would
        only have sent every idle worker after a job it cannot have.
        """
        wake = self.dialect.wake_up_condition()
        if left and wake is not None:
            self.run(conn, select(wake))
