"""Running: task threads that take ready jobs, run their task and hand on the outcome."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from queuekit.errors import InvalidArgumentError
from queuekit.repository import Outcome
from queuekit.types import Job, PartialSuccess
from queuekit.worker.context import JobContext, partial_problem, recordable
from queuekit.worker.state import Pending, Run, WorkerState, elapsed_ms, ewma, log


class Runner:
    """Runs tasks on ``concurrency`` threads, one attempt per thread at a time."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state

    def start(
        self, spawn: Callable[[Callable[[], None], str, list[threading.Thread]], None]
    ) -> None:
        """Start the task threads."""
        state = self.state
        for number in range(state.settings.concurrency):
            spawn(self._task_loop, f"task-{number}", state.task_threads)

    def is_own_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` runs tasks for this worker."""
        return thread in self.state.task_threads

    def stop_threads(self) -> None:
        """Tell idle task threads to exit (call with the lock held)."""
        self.state.threads_exit = True
        self.state.work_ready.notify_all()

    def _task_loop(self) -> None:
        state = self.state
        finished: Run | None = None
        outcome: Outcome | None = None
        while True:
            with state.lock:
                if finished is not None:
                    self._finish_run(finished, outcome)
                    finished, outcome = None, None
                while not state.ready:
                    if state.threads_exit:
                        return
                    state.work_ready.wait()
                job = state.ready.popleft()
                run = self._start_run(job)
                if state.running_low():
                    state.fetch_wake.notify()
            outcome = self._execute(run)
            finished = run

    def _start_run(self, job: Job) -> Run:
        state = self.state
        settings = state.settings
        context = JobContext(job, settings.worker_id, settings.manager)
        now = time.monotonic()
        deadline = None
        if settings.job_timeout is not None:
            deadline = now + settings.job_timeout.total_seconds()
        run = Run(job, context, now, deadline)
        assert job.correlation_id is not None
        state.running[job.correlation_id] = run
        state.busy += 1
        if deadline is not None:
            earliest = state.deadlines[0][0] if state.deadlines else None
            heapq.heappush(state.deadlines, (deadline, next(state.sequence), run))
            if earliest is None or deadline < earliest:
                state.house_wake.notify()
        return run

    def _finish_run(self, run: Run, outcome: Outcome | None) -> None:
        state = self.state
        state.busy -= 1
        state.task_seconds = ewma(state.task_seconds, time.monotonic() - run.started)
        if state.stopping or state.running_low():
            # A slot freed: the fetch loop may claim (or a shutdown stop waiting).
            state.fetch_wake.notify()
        if run.abandoned:
            log.warning(
                "task %s of job %s returned after its attempt was already recorded as failed",
                run.job.task_identifier,
                run.job.id,
            )
            return
        assert run.job.correlation_id is not None
        del state.running[run.job.correlation_id]
        if outcome is not None:
            state.queue_outcome(Pending(outcome))

    def _execute(self, run: Run) -> Outcome:
        job = run.job
        task = self.state.settings.tasks.get(job.task_identifier)
        if task is None:
            return Outcome(
                job,
                "failed",
                0,
                error=f"no handler registered for task: {job.task_identifier}",
                exhaust=True,
            )
        try:
            result = task(job.payload, run.context)
        except BaseException as error:  # a task's exception never reaches the worker
            return Outcome(job, "failed", elapsed_ms(run.started), error=recordable(error))
        elapsed = elapsed_ms(run.started)
        if isinstance(result, PartialSuccess):
            problem = partial_problem(result)
            if problem is not None:
                return Outcome(job, "failed", elapsed, error=InvalidArgumentError(problem))
            return Outcome(job, "partial_success", elapsed, partial=result)
        return Outcome(job, "completed", elapsed)


__all__ = ["Runner"]
