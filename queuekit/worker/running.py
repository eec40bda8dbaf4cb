"""Running: starting attempts in free slots, on task threads or on the worker's event loop.

Every started attempt takes one of the ``concurrency`` slots until its task
returns. A plain function runs on a task thread; threads are started on
demand, one per thread task in flight. A coroutine function runs on one
asyncio event loop that the worker owns, on a thread of its own, so
thousands of tasks awaiting I/O need no thread each; timeouts, shutdown and
lost locks cancel them for real (``asyncio.CancelledError`` inside).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import threading
import time
from collections.abc import Callable
from functools import partial

from queuekit import instrumentation
from queuekit.errors import InvalidArgumentError
from queuekit.repository import Outcome
from queuekit.types import Job, PartialSuccess
from queuekit.worker.context import JobContext, awaitable_problem, partial_problem, recordable
from queuekit.worker.settling import Settlement, late_result
from queuekit.worker.state import Pending, Run, WorkerState, elapsed_ms, ewma, log

Spawn = Callable[[Callable[[], None], str, list[threading.Thread]], None]

#: How long the event loop's thread may take to cancel what is left when the worker stops.
LOOP_CLOSE_GRACE = 2.0


class Runner:
    """Starts ready jobs in free slots and turns what their tasks did into outcomes."""

    def __init__(self, state: WorkerState, spawn: Spawn) -> None:
        self.state = state
        self._spawn = spawn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    # -- session ------------------------------------------------------------------

    def start(self) -> None:
        """Start the event loop's thread if any task is a coroutine function."""
        if not self.state.settings.async_tasks:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        threads: list[threading.Thread] = []
        self._spawn(lambda: self._serve(loop), "event-loop", threads)
        self._loop_thread = threads[0]

    def is_own_thread(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` runs tasks for this worker."""
        return thread in self.state.task_threads or thread is self._loop_thread

    def stop_threads(self) -> None:
        """Tell idle task threads to exit (call with the lock held)."""
        self.state.threads_exit = True
        self.state.work_ready.notify_all()

    def stop_loop(self) -> None:
        """Cancel what still runs on the event loop, then close it and wait for its thread."""
        loop, thread = self._loop, self._loop_thread
        self._loop = self._loop_thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(LOOP_CLOSE_GRACE + 1.0)

    # -- starting attempts (lock held) -----------------------------------------------

    def dispatch(self, *, taking: int = 0) -> None:
        """Start ready jobs while slots are free; call with the lock held.

        ``taking``: thread attempts the calling task thread picks up itself
        right after, so no other thread is woken for them (a woken thread
        would find nothing left and go back to sleep).
        """
        state = self.state
        settings = state.settings
        starting: list[Run] = []
        # A slot kept for a named queue's next job (``settling``) takes no buffered job.
        while state.ready and state.busy + state.settling < settings.concurrency:
            run = self._start_run(state.ready.popleft())
            if run.job.task_identifier in settings.async_tasks:
                starting.append(run)
            else:
                state.handoff.append(run)
                state.sync_in_flight += 1
                if state.sync_in_flight > len(state.task_threads):
                    number = len(state.task_threads)
                    self._spawn(self._task_loop, f"task-{number}", state.task_threads)
                elif taking:
                    taking -= 1
                else:
                    state.work_ready.notify()
        if starting:
            self._submit(starting)
        if state.running_low():
            state.fetch_wake.notify()

    def _start_run(self, job: Job) -> Run:
        state = self.state
        settings = state.settings
        context = JobContext(job, settings.worker_id, settings.manager)
        now = time.monotonic()
        deadline = None
        if settings.job_timeout is not None:
            deadline = now + settings.job_timeout.total_seconds()
        run = Run(job, context, now, deadline)
        context.hooks = Settlement(state, run)
        assert job.correlation_id is not None
        state.running[job.correlation_id] = run
        state.busy += 1
        if deadline is not None:
            earliest = state.deadlines[0][0] if state.deadlines else None
            heapq.heappush(state.deadlines, (deadline, next(state.sequence), run))
            if earliest is None or deadline < earliest:
                state.house_wake.notify()
        return run

    def _finish_run(self, run: Run, outcome: Outcome | None, *, taking: int = 0) -> None:
        """Free the run's slot and queue its outcome unless it was settled already.

        ``taking`` as for :meth:`dispatch`.
        """
        state = self.state
        state.busy -= 1
        state.task_seconds = ewma(state.task_seconds, time.monotonic() - run.started)
        if state.stopping or state.running_low():
            # A slot freed: the fetch loop may claim (or a shutdown stop waiting).
            state.fetch_wake.notify()
        if run.block is not None:
            late_result(run, outcome)  # its ctx.transaction() settled the attempt already
            assert run.job.correlation_id is not None
            del state.running[run.job.correlation_id]
        elif run.abandoned:
            log.info(
                "task %s of job %s returned after its attempt was settled; its result is dropped",
                run.job.task_identifier,
                run.job.id,
            )
        else:
            assert run.job.correlation_id is not None
            del state.running[run.job.correlation_id]
            if outcome is not None:
                state.queue_outcome(Pending(outcome))
        self.dispatch(taking=taking)

    # -- task threads ----------------------------------------------------------------

    def _task_loop(self) -> None:
        state = self.state
        finished: Run | None = None
        outcome: Outcome | None = None
        while True:
            with state.lock:
                if finished is not None:
                    state.sync_in_flight -= 1
                    self._finish_run(finished, outcome, taking=1)
                    finished, outcome = None, None
                while not state.handoff:
                    if state.threads_exit:
                        return
                    state.work_ready.wait()
                run = state.handoff.popleft()
            outcome = self._execute(run)
            finished = run

    def _execute(self, run: Run) -> Outcome:
        hooks = instrumentation.hooks
        if hooks is None:
            return self._call(run)
        with hooks.process(run.job) as scope:  # the task runs inside the attempt's span
            outcome = self._call(run)
            scope.finished(outcome)
        return outcome

    def _call(self, run: Run) -> Outcome:
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
        if result is not None and inspect.isawaitable(result):
            problem = awaitable_problem(job.task_identifier, result)
            return Outcome(job, "failed", elapsed_ms(run.started), error=problem)
        return self._result_outcome(run, result)

    def _result_outcome(self, run: Run, result: object) -> Outcome:
        elapsed = elapsed_ms(run.started)
        if isinstance(result, PartialSuccess):
            problem = partial_problem(result)
            if problem is not None:
                return Outcome(run.job, "failed", elapsed, error=InvalidArgumentError(problem))
            return Outcome(run.job, "partial_success", elapsed, partial=result)
        return Outcome(run.job, "completed", elapsed)

    # -- the event loop ----------------------------------------------------------------

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=LOOP_CLOSE_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _submit(self, runs: list[Run]) -> None:
        """Schedule async attempts on the loop (lock held; any thread).

        On the loop's own thread (an attempt just ended there) they start
        at once; from another thread one wake-up of the loop starts them all.
        """
        loop = self._loop
        assert loop is not None
        for run in runs:
            run.interrupt = partial(_call_soon, loop, self._interrupt, run)
        if threading.current_thread() is self._loop_thread:
            self._begin_async(runs)
        else:
            loop.call_soon_threadsafe(self._begin_async, runs)

    def _begin_async(self, runs: list[Run]) -> None:
        """On the loop: start the attempts' asyncio tasks."""
        loop = self._loop
        assert loop is not None
        for run in runs:
            task = loop.create_task(self._run_async(run))
            run.aio_task = task
            task.add_done_callback(partial(self._async_done, run))

    def _interrupt(self, run: Run) -> None:
        """On the loop: cancel the attempt's asyncio task (scheduled after it began)."""
        task = run.aio_task
        if task is not None and not task.done():
            task.cancel()

    async def _run_async(self, run: Run) -> Outcome:
        hooks = instrumentation.hooks
        if hooks is None:
            return await self._await(run)
        # Entered inside the attempt's own asyncio task, so the span stays the
        # current one across the task's awaits and never leaks into another's.
        with hooks.process(run.job) as scope:
            outcome = await self._await(run)
            scope.finished(outcome)
        return outcome

    async def _await(self, run: Run) -> Outcome:
        job = run.job
        task = self.state.settings.tasks[job.task_identifier]
        try:
            result = await task(job.payload, run.context)  # type: ignore[misc]
        except BaseException as error:  # CancelledError included: the attempt ends here
            return Outcome(job, "failed", elapsed_ms(run.started), error=recordable(error))
        return self._result_outcome(run, result)

    def _async_done(self, run: Run, done: asyncio.Task[Outcome]) -> None:
        """On the loop: the attempt's task ended (even if cancelled before it began)."""
        run.aio_task = None
        if done.cancelled():
            error = asyncio.CancelledError("cancelled before the task began")
            outcome = Outcome(run.job, "failed", elapsed_ms(run.started), error=error)
        else:
            outcome = done.result()
        with self.state.lock:
            self._finish_run(run, outcome)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[Run], None], run: Run) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nothing runs on it any more
        loop.call_soon_threadsafe(callback, run)


__all__ = ["LOOP_CLOSE_GRACE", "Runner"]
