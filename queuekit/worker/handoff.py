"""Hand-off: the flusher claims a freed named queue's next job for the slot its job left.

An outcome of a named-queue job keeps its slot (``WorkerState.settling``)
until the outcome is written, because that write frees the queue and the
queue's next job should be able to run in that slot at once. Rather than
writing the outcome, committing, waking the fetch loop and claiming in a
second transaction, the flusher asks for both in one
(``JobManager.finish_and_claim``): the claim is an ordinary one, in claim
order, for as many slots as the batch freed queues. The jobs it returns are
started like any claimed job; the fetch loop only hears of it when the
claim found less than it asked for.
"""

from __future__ import annotations

from collections.abc import Callable

from queuekit.repository import FinishedJob, Outcome
from queuekit.types import Job
from queuekit.worker.reporting import Reporter
from queuekit.worker.state import Pending, WorkerState


class Handoff:
    """Settle-and-claim for the flusher: how many slots, the call, taking the jobs in."""

    def __init__(
        self,
        state: WorkerState,
        reporter: Reporter,
        dispatch: Callable[[], None],
        release: Callable[[list[Job]], None],
    ) -> None:
        self.state = state
        self.reporter = reporter
        #: Starts ready jobs in free slots (called with the lock held).
        self._dispatch = dispatch
        #: Gives back claimed jobs that will not start (the worker is stopping).
        self._release = release

    def slots(self, batch: list[Pending]) -> int:
        """Slots the settle of ``batch`` may claim for (call with the lock held).

        One per named-queue outcome in the batch (the slot its job left and
        the worker kept from buffered jobs), less any of those not actually
        free (a timed-out task still running). None while the worker stops,
        is fenced, or may claim no task.
        """
        state = self.state
        if state.stopping or state.fenced or state.settings.task_identifiers == ():
            return 0
        kept = sum(1 for p in batch if p.outcome.job.queue_name is not None)
        if not kept:
            return 0
        return max(0, min(kept, state.claimable_slots() + kept))

    def settle(self, outcomes: list[Outcome], slots: int) -> tuple[list[FinishedJob], list[Job]]:
        """Record ``outcomes`` and claim for up to ``slots`` freed slots, in one transaction."""
        settings = self.state.settings
        return settings.manager.finish_and_claim(
            settings.worker_id,
            outcomes,
            slots=slots,
            task_identifiers=settings.task_identifiers,
            forbidden_flags=settings.forbidden_flags,
            history_retention=settings.history_retention,
        )

    def accept(self, claimed: list[Job]) -> list[Job]:
        """Hold and start the claimed jobs (lock held); returns those to give back instead.

        Call after the batch's kept slots were given up
        (``WorkerState.settled``), so that the jobs take exactly those slots.
        """
        state = self.state
        if claimed and state.stopping:
            return claimed  # the shutdown already took the buffer: give these back
        state.stats.claimed += len(claimed)
        for job in claimed:
            assert job.correlation_id is not None
            state.held[job.correlation_id] = job
        # Ahead of buffered jobs: they take the slots kept for them, now free.
        state.ready.extendleft(reversed(claimed))
        self._dispatch()  # also fills kept slots the settle claimed nothing for
        return []

    def report(self, claimed: list[Job], refused: list[Job]) -> None:
        """Emit ``job/claimed`` for the jobs taken in; give back the refused (lock not held)."""
        if refused:
            self._release(refused)
        if self.reporter.wants("job/claimed"):
            for job in claimed:
                if job not in refused:
                    self.reporter.emit("job/claimed", self.state.job_data(job))


__all__ = ["Handoff"]
