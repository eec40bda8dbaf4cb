"""Hand-off: the flusher claims a freed named queue's next job for the slot its job left.

An outcome of a named-queue job keeps its slot (``WorkerState.settling``)
until the outcome is written, because that write frees the queue and the
queue's next job should be able to run in that slot at once. Rather than
writing the outcome, committing, waking the fetch loop and claiming in a
second transaction, the flusher asks for both in one
(``JobManager.finish_and_claim``): an ordinary claim, in claim order, for
the kept slots plus what the fetch loop would claim now (other idle slots,
the prefetch), so that the fetch loop need not claim again right after.
The jobs it returns are started like any claimed job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from queuekit.repository import FinishedJob, Outcome
from queuekit.types import Job
from queuekit.worker.reporting import Reporter
from queuekit.worker.state import Pending, WorkerState


class Handoff:
    """Settle-and-claim for the flusher: how much to claim, the call, taking the jobs in."""

    def __init__(
        self,
        state: WorkerState,
        reporter: Reporter,
        dispatch: Callable[[], None],
        release: Callable[[list[Job]], None],
        wanted: Callable[[], int],
    ) -> None:
        self.state = state
        self.reporter = reporter
        #: Starts ready jobs in free slots (called with the lock held).
        self._dispatch = dispatch
        #: Gives back claimed jobs that will not start (the worker is stopping).
        self._release = release
        #: What the fetch loop would claim now (called with the lock held).
        self._wanted = wanted

    def plan(self, batch: list[Pending]) -> Plan:
        """What the settle of ``batch`` claims for (call with the lock held).

        One slot per named-queue outcome in the batch (the slot its job left
        and the worker kept from buffered jobs), less any of those not
        actually free (a timed-out task still running); and, as the fetch
        loop would claim now, the worker's other idle slots and its prefetch,
        named-queue jobs only for the slots free now. Nothing while the
        worker stops, is fenced, or may claim no task.
        """
        state = self.state
        if state.stopping or state.fenced or state.settings.task_identifiers == ():
            return Plan(0, 0, 0)
        kept = sum(1 for p in batch if p.outcome.job.queue_name is not None)
        slots = max(0, min(kept, state.claimable_slots() + kept))
        if not slots:
            return Plan(0, 0, 0)
        return Plan(slots, self._wanted(), state.startable())

    def settle(self, outcomes: list[Outcome], plan: Plan) -> tuple[list[FinishedJob], list[Job]]:
        """Record ``outcomes`` and claim as ``plan`` says, in one transaction."""
        settings = self.state.settings
        return settings.manager.finish_and_claim(
            settings.worker_id,
            outcomes,
            slots=plan.slots,
            task_identifiers=settings.task_identifiers,
            forbidden_flags=settings.forbidden_flags,
            history_retention=settings.history_retention,
            more=plan.more,
            more_queued=plan.more_queued,
        )

    def accept(self, claimed: list[Job], plan: Plan) -> list[Job]:
        """Hold and start the claimed jobs (lock held); returns those to give back instead.

        Call after the batch's kept slots were given up
        (``WorkerState.settled``). Named-queue jobs go first, so that each
        takes one of the slots free now (the claim took no more of them than
        that); the rest follow, ahead of older buffered jobs. Like the fetch
        loop's claims, a claim that found less than it asked for marks the
        worker dry (``WorkerState.note_claim``).
        """
        state = self.state
        if claimed and state.stopping:
            return claimed  # the shutdown already took the buffer: give these back
        state.hold(claimed)
        queued = [job for job in claimed if job.queue_name is not None]
        plain = [job for job in claimed if job.queue_name is None]
        state.ready.extendleft(reversed(queued + plain))
        self._dispatch()  # also fills kept slots the settle claimed nothing for
        state.note_claim(claimed, plan.asked, plan.slots + plan.more_queued)
        return []

    def report(self, claimed: list[Job], refused: list[Job]) -> None:
        """Emit ``job/claimed`` for the jobs taken in; give back the refused (lock not held)."""
        if refused:
            self._release(refused)
        self.reporter.claimed([job for job in claimed if job not in refused])


class Plan(NamedTuple):
    """What one settle claims for."""

    #: Slots kept for the freed queues' next jobs (0: no claim, a plain settle).
    slots: int
    #: Further jobs the worker wants (idle slots, prefetch).
    more: int
    #: Of those, how many may be in named queues (slots free now).
    more_queued: int

    @property
    def asked(self) -> int:
        """Jobs the claim may return at most (the freed queues permitting)."""
        return self.slots + self.more


__all__ = ["Handoff", "Plan"]
