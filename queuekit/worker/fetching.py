"""Fetching: claiming jobs for idle slots (plus a prefetch) and releasing unstarted ones.

The fetch loop runs on the thread that called ``run``/``drain`` (or the
worker's background thread after ``start``) and is the only place that
claims. It sleeps until a slot frees, a notification or poll is due, or
the worker stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from queuekit.types import Job
from queuekit.worker.reporting import Reporter
from queuekit.worker.state import WorkerState, ewma, log

#: Backoff bounds (seconds) after a database error.
MIN_BACKOFF = 0.05
MAX_BACKOFF = 5.0
#: Most jobs the adaptive prefetch holds beyond the idle task slots.
ADAPTIVE_PREFETCH_MAX = 500
#: Time the final release and flush may take after the tasks stopped.
BOOKKEEPING_GRACE = 5.0


class Fetcher:
    """Claims jobs into ``state.ready`` and gives back those never started."""

    def __init__(
        self, state: WorkerState, reporter: Reporter, dispatch: Callable[[], None]
    ) -> None:
        self.state = state
        self.reporter = reporter
        #: Starts ready jobs in free slots (called with the lock held).
        self._dispatch = dispatch

    def loop(self) -> None:
        """Claim until the worker stops (or, draining, until nothing is claimable)."""
        state = self.state
        settings = state.settings
        backoff = MIN_BACKOFF
        next_poll = time.monotonic()
        while True:
            with state.lock:
                while True:
                    if state.stopping:
                        return
                    want = self._wanted()
                    if want and (not state.dry or state.wake or state.slot_freed_since_capped()):
                        break
                    if state.mode == "drain":
                        if state.dry and not state.wake and state.drained():
                            return
                        state.fetch_wake.wait()
                        continue
                    if not state.dry:
                        state.fetch_wake.wait()  # for an idle task slot
                        continue
                    remaining = next_poll - time.monotonic()
                    if remaining <= 0:
                        if not want:
                            # A poll is due but no slot is free: wait for one
                            # instead of spinning with the lock held.
                            state.fetch_wake.wait(settings.poll_interval.total_seconds())
                            continue
                        state.wake = True  # poll
                        continue
                    state.fetch_wake.wait(remaining)
                state.wake = False
            next_poll = time.monotonic() + settings.poll_interval.total_seconds()
            try:
                if state.suspect_orphans:
                    self._release_orphans()
                claim_started = time.monotonic()
                with state.lock:
                    holding = bool(state.held)
                    # Jobs of named queues only for slots free now: one waiting in the
                    # buffer would hold its whole queue while others could run it.
                    startable = state.startable()
                jobs = settings.manager.claim_for_worker(
                    settings.worker_id,
                    task_identifiers=settings.task_identifiers,
                    forbidden_flags=settings.forbidden_flags,
                    batch_size=want,
                    history_retention=settings.history_retention,
                    max_queued=startable,
                )
            except Exception as error:
                # The claim may have committed with its answer lost: look for such
                # jobs once the database answers again.
                state.suspect_orphans = True
                self.reporter.bookkeeping_error("claim", error)
                with state.lock:
                    if not state.stopping:
                        state.fetch_wake.wait(backoff)
                    state.wake = True
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            with state.lock:
                state.claim_seconds = ewma(state.claim_seconds, time.monotonic() - claim_started)
                self._update_prefetch()
                if not holding:
                    # Every lock we hold now was taken by this claim.
                    state.lease_from = max(state.lease_from, claim_started)
            self._accept(jobs, want, startable)

    def _wanted(self) -> int:
        """Jobs to claim now: idle task slots plus prefetch, minus what is waiting."""
        state = self.state
        if state.fenced:
            return 0
        idle = state.claimable_slots()
        want = idle + state.prefetch - len(state.ready)
        # Top up only once the buffer ran low, so claims come in useful batches.
        if want <= 0 or not state.running_low():
            return 0
        return want

    def _update_prefetch(self) -> None:
        """Recompute the prefetch: as configured, or enough to cover a claim's round trip.

        With tasks much shorter than a claim, task slots would wait for every
        claim; the adaptive prefetch holds about what they finish during two
        claims, so the buffer holds milliseconds of work, not more.
        """
        state = self.state
        settings = state.settings
        if (
            not settings.adaptive_prefetch
            or state.task_seconds is None
            or state.claim_seconds is None
        ):
            state.prefetch = settings.prefetch
            return
        per_second = settings.concurrency / max(state.task_seconds, 1e-6)
        covering = int(per_second * state.claim_seconds * 2)
        state.prefetch = max(settings.prefetch, min(ADAPTIVE_PREFETCH_MAX, covering))

    def _accept(self, jobs: list[Job], wanted: int, max_queued: int) -> None:
        state = self.state
        with state.lock:
            state.hold(jobs)
            state.ready.extend(jobs)
            if jobs:
                self._dispatch()
            state.note_claim(jobs, wanted, max_queued)
        self.reporter.claimed(jobs)

    def _release_orphans(self) -> None:
        """Release jobs our worker id holds that we do not know (a claim answer was lost)."""
        state = self.state
        manager, worker_id = state.settings.manager, state.settings.worker_id
        held = manager.held_jobs(worker_id)
        with state.lock:
            orphans = [j for j in held if j.correlation_id not in state.held]
        if orphans:
            released = manager.release_jobs(worker_id, orphans)
            log.warning(
                "released %d job(s) claimed by a claim whose answer was lost", len(released)
            )
        state.suspect_orphans = False

    def release(self, jobs: list[Job]) -> None:
        """Give back claimed jobs that never started, retrying for a short while."""
        state = self.state
        deadline = time.monotonic() + BOOKKEEPING_GRACE
        backoff = MIN_BACKOFF
        while True:
            try:
                state.settings.manager.release_jobs(state.settings.worker_id, jobs)
            except Exception as error:
                self.reporter.bookkeeping_error("release", error)
                if time.monotonic() + backoff > deadline:
                    log.error(
                        "could not release %d unstarted job(s); they run again once their "
                        "lock expires",
                        len(jobs),
                    )
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            log.info("released %d claimed job(s) that had not started", len(jobs))
            break
        with state.lock:
            for job in jobs:
                state.held.pop(job.correlation_id, None)  # type: ignore[arg-type]


__all__ = ["ADAPTIVE_PREFETCH_MAX", "BOOKKEEPING_GRACE", "MAX_BACKOFF", "MIN_BACKOFF", "Fetcher"]
