"""The maintenance loop: lock recovery, bucket refills and garbage collection.

Every ``interval`` (a minute by default) it unlocks jobs whose lock is
older than ``lock_timeout`` (their attempt's history row closes as failed,
``lock expired``), refills rate-limit buckets whose window has passed, and
removes the registry rows of workers not seen for ``lock_timeout`` (dead ones).
Garbage collection (expired history, empty named queues, unused task
identifiers) runs on a cron schedule, ``0 3 * * *`` UTC by default. The
last GC slot is kept in ``queuekit_known_crontabs`` under the reserved
identifier ``queuekit:gc`` and claimed with a compare-and-set, so with many
workers running maintenance each slot's GC runs once, and a slot missed
while nothing ran fires at the next start.

Every step is safe to run from many processes at once: resets and GC
work in bounded batches on rows they lock with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from queuekit import defaults
from queuekit.cron import check_schedule, due_slot, parse_timezone
from queuekit.durations import Duration, parse_duration
from queuekit.errors import InvalidArgumentError, QueueKitError
from queuekit.manager import JobManager
from queuekit.signals import stop_signals

log = logging.getLogger("queuekit.maintenance")
T = TypeVar("T")

#: The reserved ``queuekit_known_crontabs`` identifier holding the last GC slot.
GC_IDENTIFIER = "queuekit:gc"
#: A lock older than this is taken back. Workers refresh their running jobs'
#: locks every ``min(30 s, lock_timeout / 5)``, so only dead workers' jobs are.
DEFAULT_LOCK_TIMEOUT = defaults.LOCK_TIMEOUT
DEFAULT_GC_SCHEDULE = "0 3 * * *"


@dataclass(frozen=True)
class GcReport:
    """Rows one garbage collection deleted."""

    slot: datetime
    history: int
    queues: int
    task_identifiers: int


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance pass did (``gc`` is None when no GC slot was due)."""

    reset: int
    refilled: int
    gc: GcReport | None
    dead_workers: int = 0


class Maintenance:
    """Runs the periodic upkeep of one queue database; see the module docstring.

    Args:
        manager: the queue to look after.
        interval: time between passes.
        lock_timeout: locks older than this are reset (keep it well above
            every worker's heartbeat interval, 30 seconds at most).
        gc_schedule: 5-field cron schedule of garbage collection.
        gc_timezone: time zone the schedule is read in.
        task_identifier_retention: unused task identifiers older than this
            (with no schema and no job) are deleted by GC.
    """

    def __init__(
        self,
        manager: JobManager,
        *,
        interval: Duration = "1 minute",
        lock_timeout: Duration = DEFAULT_LOCK_TIMEOUT,
        gc_schedule: str = DEFAULT_GC_SCHEDULE,
        gc_timezone: str = "UTC",
        task_identifier_retention: Duration = defaults.TASK_IDENTIFIER_KEEP,
    ) -> None:
        if not isinstance(manager, JobManager):
            raise InvalidArgumentError("Maintenance needs a JobManager")
        self.manager = manager
        self.interval = parse_duration(interval, name="interval", allow_zero=False)
        self.lock_timeout = parse_duration(lock_timeout, name="lock_timeout")
        self.gc_schedule = check_schedule(gc_schedule)
        self.gc_zone = parse_timezone(gc_timezone)
        self.task_identifier_retention = parse_duration(
            task_identifier_retention, name="task_identifier_retention"
        )
        self.runs = 0
        self.gc_runs = 0
        self.errors = 0
        #: Called with (step name, error) when a step fails; a worker turns it into an event.
        self.on_error: Callable[[str, BaseException], None] | None = None
        self._stop = threading.Event()
        self._registered = False

    # -- one pass ---------------------------------------------------------------

    def run_once(self) -> MaintenanceReport:
        """Reset expired locks, refill buckets, forget dead workers, and GC if a slot is due.

        A failing step is logged and counted; the others still run.
        """
        reset = self._step("reset_locked_jobs", self._reset)
        refilled = self._step("refill_rate_limits", self.manager.refill_rate_limits)
        dead = self._step("remove_dead_workers", self._remove_dead_workers)
        gc = self._step("gc", self.run_gc_if_due)
        self.runs += 1
        return MaintenanceReport(reset or 0, refilled or 0, gc, dead or 0)

    def _remove_dead_workers(self) -> int:
        count = self.manager.remove_dead_workers(older_than=self.lock_timeout)
        if count:
            log.info("removed %d worker(s) not seen for %s", count, self.lock_timeout)
        return count

    def _reset(self) -> int:
        count = self.manager.reset_locked_jobs(lock_timeout=self.lock_timeout)
        if count:
            log.warning("reset %d job(s) whose lock was older than %s", count, self.lock_timeout)
        return count

    def _step(self, name: str, action: Callable[[], T]) -> T | None:
        try:
            return action()
        except QueueKitError as error:
            self.errors += 1
            log.warning("maintenance step %s failed: %s", name, error)
            if self.on_error is not None:
                self.on_error(name, error)
            return None

    def run_gc_if_due(self) -> GcReport | None:
        """Garbage-collect if a GC slot passed unclaimed, claiming it first; else None."""
        if not self._registered:
            self.manager.ensure_crontabs([GC_IDENTIFIER])
            self._registered = True

        def due(known_since: datetime, last: datetime | None, now: datetime) -> datetime | None:
            return due_slot(self.gc_schedule, self.gc_zone, known_since, last, now)

        slot = self.manager.claim_due_slot(GC_IDENTIFIER, due)
        if slot is None:
            return None
        return self.run_gc(slot)

    def run_gc(self, slot: datetime) -> GcReport:
        """Garbage-collect now (the caller decided it is due)."""
        report = GcReport(
            slot=slot,
            history=self.manager.gc_job_history(),
            queues=self.manager.gc_job_queues(),
            task_identifiers=self.manager.gc_task_identifiers(keep=self.task_identifier_retention),
        )
        self.gc_runs += 1
        log.info(
            "garbage collection for slot %s: %d history rows, %d queues, %d task identifiers",
            slot,
            report.history,
            report.queues,
            report.task_identifiers,
        )
        return report

    # -- the loop ---------------------------------------------------------------

    def run_until(self, stop: threading.Event) -> None:
        """Run a pass now and then every ``interval`` until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # run_once already isolates steps; this is a last guard
                self.errors += 1
                log.exception("maintenance pass failed")
            stop.wait(self.interval.total_seconds())

    def run(self) -> None:
        """Run the loop in this thread until SIGINT/SIGTERM (main thread) or :meth:`stop`."""
        self._stop.clear()
        with stop_signals(lambda _force: self._stop.set()):
            self.run_until(self._stop)

    def stop(self) -> None:
        """Make :meth:`run` return after the step in progress."""
        self._stop.set()


def heartbeat_interval(lock_timeout: timedelta) -> float:
    """How often a worker refreshes its locks so ``lock_timeout`` never takes them."""
    return min(30.0, max(0.05, lock_timeout.total_seconds() / 5))


#: Share of the lock timeout after which a worker that could not refresh its
#: locks gives its running attempts up (self-fencing), so that they stop before
#: the locks expire and another worker may claim the jobs.
FENCE_FRACTION = 0.75


def fence_after(lock_timeout: timedelta) -> float:
    """Seconds without a confirmed lock refresh after which a worker fences itself."""
    return lock_timeout.total_seconds() * FENCE_FRACTION


__all__ = [
    "DEFAULT_GC_SCHEDULE",
    "DEFAULT_LOCK_TIMEOUT",
    "FENCE_FRACTION",
    "GC_IDENTIFIER",
    "GcReport",
    "Maintenance",
    "MaintenanceReport",
    "fence_after",
    "heartbeat_interval",
]
