"""Self-fencing: a worker cut off from its database gives its jobs up before they expire.

Maintenance takes a lock back once it is older than the lock timeout,
measured on the database clock from the last refresh. A worker knows when
it last *sent* a refresh that then succeeded (``state.lease_from``, a
monotonic time no later than the refresh's database time), so its locks
cannot expire before ``lease_from + lock_timeout``. When no refresh has
succeeded for :func:`~queuekit.maintenance.fence_after` of the lock timeout
(heartbeats hang or fail: a cut link, a dead database), the fence thread
cancels every running attempt (``ctx.cancelled`` set, the task's result
dropped, the attempt queued as failed with :class:`FencedError`), forgets
claimed jobs that have not started, and stops claiming. The jobs are then
claimable elsewhere once their locks expire, and nothing of this worker
runs them meanwhile: a named queue never runs two jobs at once, even
across a partition (for tasks that honour ``ctx.cancelled``).

The housekeeper keeps trying; the first refresh (or, holding nothing, the
first database round trip) that succeeds lifts the fence and the worker
claims again, without a restart. Outcomes written late are ownership-checked
as always, so a failure recorded after another worker took the job is a no-op.
"""

from __future__ import annotations

import time

from queuekit.errors import QueueKitError
from queuekit.repository import Outcome
from queuekit.worker.reporting import Role
from queuekit.worker.state import Pending, elapsed_ms, log

#: Bounds (seconds) of how often the fence thread looks at the lease.
MIN_TICK = 0.05
MAX_TICK = 1.0


class FencedError(QueueKitError):
    """The error recorded for an attempt given up because its worker lost the database."""


class Fence(Role):
    """Watches ``state.lease_from`` and fences the worker when it grows too old."""

    def loop(self) -> None:
        """Check the lease until the background threads are told to stop."""
        state = self.state
        settings = state.settings
        tick = min(MAX_TICK, max(MIN_TICK, settings.fence_after / 20))
        stop = state.background_stop
        while not stop.is_set():
            with state.lock:
                silent = time.monotonic() - state.lease_from
                due = silent >= settings.fence_after and self._holds_attempts()
                if due:
                    cancelled = self._fence(silent)
            if due:
                self.reporter.emit(
                    "worker/error",
                    {
                        "worker_id": settings.worker_id,
                        "cause": "fence",
                        "error": f"no lock refresh for {silent:.1f} s; "
                        f"{cancelled} running attempt(s) given up",
                    },
                )
            stop.wait(tick)

    def _holds_attempts(self) -> bool:
        """Whether any claimed or running attempt is the fence's to give up (lock held)."""
        state = self.state
        return bool(state.ready) or any(run.block is None for run in state.running.values())

    def _fence(self, silent: float) -> int:
        """Give up running and unstarted jobs and stop claiming (call with the lock held)."""
        state = self.state
        settings = state.settings
        if not state.fenced:
            log.error(
                "worker %s could not refresh its locks for %.1f s (lock timeout %s): "
                "giving up its running jobs and claiming nothing until the database answers",
                settings.worker_id,
                silent,
                settings.lock_timeout,
            )
        state.fenced = True
        error = FencedError(
            f"worker {settings.worker_id} lost contact with the database for {silent:.1f} s "
            "and gave the attempt up before its lock could expire"
        )
        # An attempt whose ctx.transaction() is committing is settled by that transaction.
        runs = [run for run in state.running.values() if run.block is None]
        for run in runs:
            run.abandoned = True
            run.context.cancelled.set()
            assert run.job.correlation_id is not None
            del state.running[run.job.correlation_id]
            state.queue_outcome(
                Pending(Outcome(run.job, "failed", elapsed_ms(run.started), error=error))
            )
        for job in state.ready:
            state.held.pop(job.correlation_id, None)  # type: ignore[arg-type]
        if state.ready:
            # Still locked by us: released (if still ours) once the database answers.
            state.suspect_orphans = True
            state.ready.clear()
        state.fetch_wake.notify_all()
        return len(runs)

    def confirmed(self, since: float) -> None:
        """Every held lock was refreshed by a round trip sent at ``since``; lift any fence."""
        state = self.state
        with state.lock:
            state.lease_from = max(state.lease_from, since)
            if not state.fenced:
                return
            state.fenced = False
            state.wake = True
            state.fetch_wake.notify_all()
        log.warning("worker %s reached the database again; claiming", state.settings.worker_id)


__all__ = ["Fence", "FencedError"]
