"""Settlement: what the worker does when a task's ``ctx.transaction()`` commits or not.

A committed block has already recorded the attempt (its writes and the
job's completion in one transaction), so the worker queues no outcome for
it: the job leaves ``held`` (no more heartbeats, no lost-lock alarm when
the heartbeat finds it gone), the completion is counted, logged and
emitted as if the flusher had written it, and the task's own return value
is ignored (a different one is logged as an error). The run keeps its slot
in ``running`` until the task returns.

From the moment the block starts committing (``run.block``) the attempt is
the block's to settle: timeouts wait for it, the heartbeat does not call
its lock lost, fencing and a forced shutdown leave it alone. The ownership
check inside the block's transaction decides; a block whose check failed
settles the attempt as lost, as the heartbeat would.
"""

from __future__ import annotations

from queuekit.errors import LockLostError
from queuekit.repository import Outcome
from queuekit.worker.reporting import Reporter
from queuekit.worker.state import Run, WorkerState, elapsed_ms, log


class Settlement:
    """The :class:`~queuekit.worker.transaction.AttemptHooks` of one run."""

    __slots__ = ("run", "state")

    def __init__(self, state: WorkerState, run: Run) -> None:
        self.state = state
        self.run = run

    def elapsed_ms(self) -> int:
        """Milliseconds since the attempt started."""
        return elapsed_ms(self.run.started)

    def before_commit(self) -> None:
        """Hold the attempt for the block, unless the worker settled it already."""
        run = self.run
        with self.state.lock:
            if run.abandoned:
                job = run.job
                raise LockLostError(
                    f"job {job.id} ({job.task_identifier}): the worker already gave this attempt "
                    "up (its lock was lost, it timed out, or the worker is shutting down or cut "
                    "off from the database); its writes were rolled back and the job runs again"
                )
            run.block = "committing"

    def committed(self, outcome: Outcome) -> None:
        """The block recorded the completion: settle the run, count and report it."""
        state = self.state
        run = self.run
        correlation = run.job.correlation_id
        assert correlation is not None
        with state.lock:
            run.block = "committed"
            state.held.pop(correlation, None)
            state.stats.completed += 1
            if state.mode == "drain" or run.job.queue_name:
                # A freed named queue's next job is claimable now, with no notification.
                state.wake = True
                state.fetch_wake.notify()
        reporter = Reporter(state)
        reporter.log_outcome(outcome, False)
        if reporter.wants("job/completed"):
            reporter.emit("job/completed", reporter.outcome_data(outcome))

    def rolled_back(self, *, lost: bool) -> None:
        """The block did not commit; when the job is gone, settle the attempt as lost."""
        state = self.state
        run = self.run
        job = run.job
        correlation = job.correlation_id
        assert correlation is not None
        with state.lock:
            if not lost or run.abandoned:
                run.block = None
                return
            run.block = "lost"
            run.context.cancelled.set()
            state.held.pop(correlation, None)
        log.warning(
            "job %s (%s) lost its lock before its transaction committed; the task's writes "
            "were rolled back and its outcome will not be recorded",
            job.id,
            job.task_identifier,
            extra={**state.job_data(job), "event": "job/lock-lost"},
        )
        Reporter(state).emit("job/lock-lost", state.job_data(job))


def late_result(run: Run, outcome: Outcome | None) -> None:
    """Log a task's result that disagrees with the completion its block committed.

    A block that found its job lost settled the attempt as lost: the
    task's (failed) result is dropped without a word.
    """
    if run.block != "committed" or outcome is None or outcome.kind == "completed":
        return
    job = run.job
    what = "returned a PartialSuccess" if outcome.kind == "partial_success" else "raised"
    log.error(
        "task %s of job %s %s after ctx.transaction() had completed the job; the job stays "
        "completed (report partial success without the block, or raise inside it): %s",
        job.task_identifier,
        job.id,
        what,
        outcome.error if outcome.kind == "failed" else outcome.partial,
    )


__all__ = ["Settlement", "late_result"]
