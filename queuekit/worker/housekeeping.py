"""Housekeeping: heartbeats, ``job_timeout``, and the maintenance and cron threads.

The housekeeper thread refreshes the lock of every job this worker holds,
and the worker's own row in ``queuekit_workers``, every
``settings.heartbeat_every`` seconds, so lock expiry never takes a live job
and no live worker looks dead. It checks what it refreshed: an attempt whose
lock was taken away is cancelled and its late outcome dropped
(``job/lock-lost``). Each refresh that succeeds renews the worker's lease
against self-fencing (:mod:`~queuekit.worker.fencing`); while fenced it is
the probe that lifts the fence. It also fails attempts that overrun ``job_timeout``.
For thread tasks both are cooperative: the attempt is settled at once and
``ctx.cancelled`` set, but the thread stays busy until the task returns.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable

from queuekit.cron import CronFiring, CronScheduler
from queuekit.errors import QueueKitError
from queuekit.repository import Outcome
from queuekit.types import Job
from queuekit.worker.context import JobTimeoutError
from queuekit.worker.fencing import Fence
from queuekit.worker.reporting import Reporter, Role
from queuekit.worker.state import Pending, Run, WorkerState, elapsed_ms, log

#: Jobs per heartbeat statement.
HEARTBEAT_CHUNK = 500
#: Seconds after which an overdue attempt whose ``ctx.transaction()`` was committing is
#: looked at again.
COMMIT_RECHECK = 0.05

Spawn = Callable[[Callable[[], None], str, list[threading.Thread]], None]


class Housekeeper(Role):
    """Keeps held locks fresh, enforces timeouts, runs maintenance and cron."""

    def __init__(
        self, state: WorkerState, reporter: Reporter, crontabs: Iterable[object], fence: Fence
    ) -> None:
        super().__init__(state, reporter)
        self.fence = fence
        cron = CronScheduler(
            state.settings.manager, crontabs, on_fired=self._cron_fired, on_error=self._cron_error
        )
        #: The cron scheduler, when there are recurring jobs.
        self.cron: CronScheduler | None = cron if cron.entries else None

    def start_background(self, spawn: Spawn) -> None:
        """Start the maintenance and cron threads the settings ask for."""
        state = self.state
        stop = state.background_stop
        upkeep = state.settings.maintenance
        if upkeep is not None:
            upkeep.on_error = self._maintenance_error
            spawn(lambda: upkeep.run_until(stop), "maintenance", state.service_threads)
        cron = self.cron
        if cron is not None:
            spawn(lambda: cron.run_until(stop), "cron", state.service_threads)

    def guarded(self, cause: str, action: Callable[[], object]) -> None:
        """Run a bookkeeping step; its queuekit error is reported, not raised."""
        try:
            action()
        except QueueKitError as error:
            self.reporter.bookkeeping_error(cause, error)

    def loop(self) -> None:
        """Fail overdue attempts and heartbeat until told to exit."""
        state = self.state
        every = state.settings.heartbeat_every
        next_beat = time.monotonic() + every
        while True:
            expired: list[Run] = []
            with state.lock:
                if state.house_exit:
                    return
                now = time.monotonic()
                while state.deadlines and state.deadlines[0][0] <= now:
                    _, _, run = heapq.heappop(state.deadlines)
                    assert run.job.correlation_id is not None
                    if state.running.get(run.job.correlation_id) is not run or run.abandoned:
                        continue
                    if run.block == "committing":  # its transaction decides; look again soon
                        later = (now + COMMIT_RECHECK, next(state.sequence), run)
                        heapq.heappush(state.deadlines, later)
                        continue
                    if run.block is None:
                        expired.append(run)
                for run in expired:
                    self._time_out(run)
                if not expired and now < next_beat:
                    wake_at = next_beat
                    if state.deadlines:
                        wake_at = min(wake_at, state.deadlines[0][0])
                    state.house_wake.wait(wake_at - now)
                    continue
            timeout = state.settings.timeout_seconds()
            for run in expired:
                self.reporter.emit("job/timeout", {**state.job_data(run.job), "timeout": timeout})
            if time.monotonic() >= next_beat:
                self._heartbeat()
                next_beat = time.monotonic() + every

    def _time_out(self, run: Run) -> None:
        """Fail an overrunning attempt now; its slot stays busy until the task returns.

        An async task is cancelled for real; a thread task only sees ``ctx.cancelled``.
        """
        state = self.state
        job_timeout = state.settings.job_timeout
        run.abandoned = True
        run.cancel(interrupt=True)
        assert run.job.correlation_id is not None
        del state.running[run.job.correlation_id]
        state.stats.timed_out += 1
        error = JobTimeoutError(f"job timed out after {job_timeout}")
        # The failure's own log line follows once it is recorded.
        log.debug(
            "job %s (%s) timed out after %s", run.job.id, run.job.task_identifier, job_timeout
        )
        state.queue_outcome(
            Pending(Outcome(run.job, "failed", elapsed_ms(run.started), error=error))
        )

    def _heartbeat(self) -> None:
        """Refresh every held lock, then stop the attempts whose lock turned out gone."""
        state = self.state
        settings = state.settings
        sent = time.monotonic()
        self.guarded("worker registry", self._touch_registry)
        with state.lock:
            jobs = list(state.held.values())
            fenced = state.fenced
        held: set[object] = set()
        try:
            if not jobs and fenced:
                settings.manager.now()  # a fenced worker's probe: does the database answer?
            for start in range(0, len(jobs), HEARTBEAT_CHUNK):
                chunk = jobs[start : start + HEARTBEAT_CHUNK]
                still = settings.manager.heartbeat(settings.worker_id, chunk)
                held.update(job.correlation_id for job in still)
        except Exception as error:
            self.reporter.bookkeeping_error("heartbeat", error)
            return
        self.fence.confirmed(sent)
        lost = [job for job in jobs if job.correlation_id not in held]
        if lost:
            self._locks_lost(lost)

    def _locks_lost(self, lost: list[Job]) -> None:
        """Settle attempts whose lock was taken away; their late outcome is dropped.

        A running attempt is cancelled at once (``ctx.cancelled`` set, an
        async task cancelled for real) and its slot stays busy until the
        task returns; a claimed job not started yet is not started. An
        outcome already queued is left to the flusher, which records only
        what the worker still owns.
        """
        state = self.state
        gone: list[Job] = []
        with state.lock:
            for job in lost:
                correlation = job.correlation_id
                assert correlation is not None
                run = state.running.get(correlation)
                if run is not None and run.block is not None:
                    continue  # its transaction's ownership check decides
                if run is not None and not run.abandoned:
                    run.abandoned = True
                    run.cancel(interrupt=True)
                    del state.running[correlation]
                elif job not in state.ready:
                    continue  # finished meanwhile: its outcome goes to the flusher
                else:
                    state.ready.remove(job)
                state.held.pop(correlation, None)
                gone.append(job)
            if gone:
                state.fetch_wake.notify()
        for job in gone:
            log.warning(
                "job %s (%s) lost its lock (failed, unlocked, reset, cancelled or claimed by "
                "another worker); its attempt is cancelled and its outcome will not be recorded",
                job.id,
                job.task_identifier,
                extra={**state.job_data(job), "event": "job/lock-lost"},
            )
            self.reporter.emit("job/lock-lost", state.job_data(job))

    def register(self) -> None:
        """Add this worker to ``queuekit_workers`` (InvalidWorkerIdError: a live one has its id)."""
        settings = self.state.settings
        settings.manager.register_worker(
            settings.worker_id,
            concurrency=settings.concurrency,
            heartbeat_interval=settings.heartbeat_every,
            task_identifiers=settings.task_identifiers,
        )

    def _touch_registry(self) -> None:
        """Refresh this worker's ``last_seen``; re-register if maintenance took the row as dead."""
        settings = self.state.settings
        if not settings.manager.touch_worker(settings.worker_id):
            self.register()

    def _maintenance_error(self, step: str, error: BaseException) -> None:
        self.reporter.bookkeeping_error(f"maintenance {step}", error)

    def _cron_error(self, identifier: str, error: BaseException) -> None:
        self.reporter.bookkeeping_error(f"cron {identifier}", error)

    def _cron_fired(self, firing: CronFiring) -> None:
        self.reporter.emit(
            "cron/fired",
            {
                "identifier": firing.identifier,
                "task_identifier": firing.task_identifier,
                "job_id": firing.job_id,
                "slot": firing.slot,
                "worker_id": self.state.settings.worker_id,
            },
        )
        self.state.nudge()


__all__ = ["COMMIT_RECHECK", "HEARTBEAT_CHUNK", "Housekeeper"]
