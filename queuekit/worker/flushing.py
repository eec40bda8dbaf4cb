"""Flushing: writing outcomes in batches, one transaction per batch, through outages.

The flusher thread takes what task slots, timeouts and shutdown queued in
``state.pending``, lets a batch gather for a few milliseconds and records it
with :meth:`JobManager.finish_jobs`. While the database is unreachable it
keeps the outcomes and retries with backoff; an outcome the database keeps
refusing is dropped and reported rather than blocking every other one.
"""

from __future__ import annotations

import time
from typing import Any

from queuekit.errors import TransientDatabaseError
from queuekit.repository import FinishedJob, Outcome
from queuekit.types import Job
from queuekit.worker.fetching import MAX_BACKOFF, MIN_BACKOFF
from queuekit.worker.handoff import Handoff, Plan
from queuekit.worker.reporting import Reporter, Role
from queuekit.worker.state import FLUSH_BATCH, Pending, WorkerState, log

#: How long the flusher lets outcomes gather before writing them.
FLUSH_WINDOW = 0.004
#: A settle that claims nothing.
NO_CLAIM = Plan(0, 0, 0)
#: Consecutive failed flushes after which the flusher looks for an unwritable outcome.
POISON_AFTER = 3


class Flusher(Role):
    """Records queued outcomes and reports what became of them."""

    def __init__(self, state: WorkerState, reporter: Reporter, handoff: Handoff) -> None:
        super().__init__(state, reporter)
        self.handoff = handoff

    def loop(self) -> None:
        """Flush until told to exit with nothing left (or the flush deadline passed)."""
        state = self.state
        settings = state.settings
        backoff = MIN_BACKOFF
        failures = 0
        while True:
            with state.lock:
                while not state.pending:
                    if state.flusher_exit:
                        return
                    state.flush_wake.wait()
                if state.flush_deadline is not None and time.monotonic() > state.flush_deadline:
                    self._give_up_pending()
                    continue
                # A named queue waits for its release: write at once instead of gathering.
                gather = not state.flusher_exit and not state.settling
            if gather:
                time.sleep(FLUSH_WINDOW)  # let a batch gather
            with state.lock:
                batch = state.pending[:FLUSH_BATCH]
                del state.pending[:FLUSH_BATCH]
                state.flushing += 1
                plan = self.handoff.plan(batch)
            claimed: list[Job] = []
            try:
                outcomes = [p.outcome for p in batch]
                if plan.slots:
                    finished, claimed = self.handoff.settle(outcomes, plan)
                else:
                    finished = settings.manager.finish_jobs(settings.worker_id, outcomes)
            except Exception as error:
                if plan.slots:
                    # The claim may have committed with its answer lost: the fetch
                    # loop looks for such jobs once the database answers again.
                    state.suspect_orphans = True
                failures += 1
                if failures >= POISON_AFTER and self._database_answers(error):
                    # The database works but refuses this batch: find the outcome it refuses.
                    self._flush_one_by_one(batch)
                    failures = 0
                    continue
                with state.lock:
                    for pending in batch:
                        pending.retried = True
                    state.pending[:0] = batch
                    state.flushing -= 1
                self.reporter.bookkeeping_error("flush", error)
                self._sleep_unless_exiting(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            failures = 0
            self._recorded(batch, finished, claimed, plan)

    def _database_answers(self, error: BaseException) -> bool:
        """Whether a flush failure is specific to the batch (the database itself answers)."""
        if isinstance(error, TransientDatabaseError):
            return False
        try:
            self.state.settings.manager.now()
        except Exception:
            return False
        return True

    def _flush_one_by_one(self, batch: list[Pending]) -> None:
        """Flush each outcome alone; one the database keeps refusing is dropped and reported.

        Its job stays locked until the lock expires and then runs again:
        better than blocking every other outcome behind it forever.
        """
        state = self.state
        settings = state.settings
        recorded: list[Pending] = []
        finished: list[FinishedJob] = []
        for pending in batch:
            try:
                finished += settings.manager.finish_jobs(settings.worker_id, [pending.outcome])
            except Exception as error:
                if not self._database_answers(error):
                    with state.lock:
                        state.pending[:0] = [p for p in batch if p not in recorded]
                        state.flushing -= 1
                    self._recorded_partly(recorded, finished)
                    return
                job = pending.outcome.job
                log.error(
                    "cannot record the %s outcome of job %s (%s); dropping it: %s",
                    pending.outcome.kind,
                    job.id,
                    job.task_identifier,
                    error,
                )
                self.reporter.bookkeeping_error("flush", error)
            recorded.append(pending)
        self._recorded(recorded, finished)

    def _applied_earlier(self, outcome: Outcome) -> FinishedJob | None:
        """The outcome as a flush whose answer was lost recorded it, or None if it did not."""
        manager = self.state.settings.manager
        job = outcome.job
        try:
            history = manager.job_history(job.id)
            record = next((h for h in history if h.correlation_id == job.correlation_id), None)
            if record is None or record.worker_id != self.state.settings.worker_id:
                return None
            if record.status != outcome.kind:
                return None
            current = manager.get_job(job.id)
        except Exception:
            return None
        exhausted = current is not None and current.status == "exhausted"
        return FinishedJob(outcome, current or job, exhausted)

    def _recorded_partly(self, batch: list[Pending], finished: list[FinishedJob]) -> None:
        with self.state.lock:
            self.state.flushing += 1  # _recorded settles one flush
        self._recorded(batch, finished)

    def _recorded(
        self,
        batch: list[Pending],
        finished: list[FinishedJob],
        claimed: list[Job] | None = None,
        plan: Plan = NO_CLAIM,
    ) -> None:
        state = self.state
        applied = {f.outcome.job.correlation_id: f for f in finished}
        for pending in batch:
            if pending.retried and pending.outcome.job.correlation_id not in applied:
                confirmed = self._applied_earlier(pending.outcome)
                if confirmed is not None:
                    applied[pending.outcome.job.correlation_id] = confirmed
        events: list[tuple[str, dict[str, Any]]] = []
        logged: list[tuple[Outcome, bool]] = []
        wants = self.reporter.wants
        outcome_data = self.reporter.outcome_data
        with state.lock:
            stats = state.stats
            for pending in batch:
                outcome = pending.outcome
                job = outcome.job
                state.held.pop(job.correlation_id, None)  # type: ignore[arg-type]
                result = applied.get(job.correlation_id)
                if result is None:
                    log.warning(
                        "job %s (%s) was no longer held by %s; its %s outcome was not recorded",
                        job.id,
                        job.task_identifier,
                        state.settings.worker_id,
                        outcome.kind,
                    )
                    continue
                logged.append((outcome, result.exhausted))
                if outcome.kind == "completed":
                    stats.completed += 1
                    if wants("job/completed"):
                        events.append(("job/completed", outcome_data(outcome)))
                elif outcome.kind == "partial_success":
                    stats.partial_success += 1
                    if wants("job/partial-success"):
                        events.append(("job/partial-success", outcome_data(outcome)))
                else:
                    stats.failed += 1
                    if wants("job/failed"):
                        events.append(("job/failed", outcome_data(outcome)))
                if result.exhausted:
                    stats.exhausted += 1
                    if wants("job/exhausted"):
                        events.append(("job/exhausted", outcome_data(outcome)))
            state.flushing -= 1
            state.settled(batch)
            freed = any(p.outcome.job.queue_name for p in batch)
            refused: list[Job] = []
            if freed:
                # The slots kept for the freed queues take what the settle claimed.
                refused = self.handoff.accept(claimed or [], plan)
            # A finished job frees its named queue: the queue's next job is claimable
            # now, with no notification to say so. Unless the settle claimed (for
            # the fetch loop too), the fetch loop looks. A drain re-checks after
            # every flush.
            if state.mode == "drain" or (freed and not plan.slots):
                state.wake = True
                state.fetch_wake.notify()
        self.handoff.report(claimed or [], refused)
        for outcome, exhausted in logged:
            self.reporter.log_outcome(outcome, exhausted)
        for name, data in events:
            self.reporter.emit(name, data)

    def _give_up_pending(self) -> None:
        state = self.state
        log.error(
            "worker %s stopped with %d outcome(s) it could not record; those jobs run again "
            "once their lock expires",
            state.settings.worker_id,
            len(state.pending),
        )
        for pending in state.pending:
            state.held.pop(pending.outcome.job.correlation_id, None)  # type: ignore[arg-type]
        state.settled(state.pending)
        state.pending.clear()
        state.fetch_wake.notify_all()

    def _sleep_unless_exiting(self, seconds: float) -> None:
        state = self.state
        with state.lock:
            deadline = state.flush_deadline
            if deadline is not None:
                seconds = max(0.0, min(seconds, deadline - time.monotonic()))
            state.flush_wake.wait(seconds)


__all__ = ["FLUSH_WINDOW", "POISON_AFTER", "Flusher"]
