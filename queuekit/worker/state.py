"""The state every part of a running worker shares, behind one lock.

A worker is a handful of threads, each owning one role (fetching, running,
flushing, housekeeping, listening). They coordinate only through the
:class:`WorkerState` below: one re-entrant lock guards every mutable field,
and each role sleeps on its own condition of that lock, so whoever changes
what a role waits for notifies that role's condition.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine

from queuekit.events import EventBus
from queuekit.maintenance import Maintenance
from queuekit.manager import JobManager
from queuekit.repository import Outcome
from queuekit.types import Job, WorkerStats

if TYPE_CHECKING:
    from queuekit.worker.context import JobContext

log = logging.getLogger("queuekit.worker")

#: Outcomes written per transaction at most.
FLUSH_BATCH = 500

Mode = Literal["run", "drain"]
BlockSettlement = Literal["committing", "committed", "lost"]


@dataclass(frozen=True)
class WorkerSettings:
    """A worker's configuration, validated once by :class:`~queuekit.Worker`."""

    manager: JobManager
    tasks: Mapping[str, Callable[..., object]]
    #: Identifiers of the tasks that are coroutine functions (run on the event loop).
    async_tasks: frozenset[str]
    concurrency: int
    worker_id: str
    task_identifiers: tuple[str, ...] | None
    forbidden_flags: tuple[str, ...] | None
    poll_interval: timedelta
    job_timeout: timedelta | None
    shutdown_timeout: timedelta
    #: The configured prefetch (the floor when adaptive).
    prefetch: int
    #: Whether the prefetch follows task and claim durations.
    adaptive_prefetch: bool
    lock_timeout: timedelta
    history_retention: timedelta
    #: Seconds between two refreshes of every held lock.
    heartbeat_every: float
    #: Seconds without a successful refresh after which the worker fences itself.
    fence_after: float
    maintenance: Maintenance | None
    #: Where the listener LISTENs (None: the worker only polls).
    listen_engine: Engine | None

    def timeout_seconds(self) -> float | None:
        """``job_timeout`` in seconds, None when attempts have no limit."""
        return None if self.job_timeout is None else self.job_timeout.total_seconds()


@dataclass
class Run:
    """A task attempt in progress."""

    job: Job
    context: JobContext
    started: float
    deadline: float | None
    #: Set when the worker has already settled this attempt (timeout, shutdown,
    #: lost lock), so the task's own result is dropped.
    abandoned: bool = False
    #: For an async task: cancels it on the event loop (CancelledError inside it).
    interrupt: Callable[[], None] | None = None
    #: For an async task: its asyncio task (touched on the event loop's thread only).
    aio_task: asyncio.Future[Any] | None = None
    #: Set once the task's ``ctx.transaction()`` settles the attempt itself: it is
    #: "committing", has "committed" the completion, or found the job "lost". The run
    #: stays in ``running`` until its task returns, but timeouts, lost-lock alarms,
    #: fencing and a forced shutdown leave it alone, and no outcome is queued for it.
    block: BlockSettlement | None = None

    def cancel(self, *, interrupt: bool) -> None:
        """Set ``ctx.cancelled``; with ``interrupt``, also cancel an async task for real.

        A thread cannot be interrupted: a thread task only sees the event.
        """
        self.context.cancelled.set()
        if interrupt and self.interrupt is not None:
            self.interrupt()


@dataclass
class Pending:
    """An outcome waiting to be flushed."""

    outcome: Outcome
    #: A flush of it failed before: that flush may have committed with its answer lost.
    retried: bool = False


class WorkerState:
    """Everything the threads of one worker share.

    Lifetime fields (``settings``, ``events``, the lock and its conditions,
    ``stats``, ``active``, ``finished``) last as long as the worker; the
    session fields set by :meth:`reset` last one ``run``/``start``/``drain``.
    Every mutable field is read and written with ``lock`` held.

    Where a job is, while this worker holds it: ``ready`` (claimed, not
    started) → ``running`` (a task runs it, on a thread or on the event
    loop) → ``pending`` (its outcome waits for the flusher) → gone once
    recorded. ``held`` maps the claim's correlation id to the job through
    all three stages, for heartbeats.

    Slots: ``busy`` counts started attempts whose task has not returned
    (at most ``concurrency``), whatever their kind. Thread tasks are handed
    to task threads through ``handoff``; threads are started on demand, one
    per thread task in flight, so a worker running async tasks only has
    few threads.
    """

    def __init__(self, settings: WorkerSettings, events: EventBus) -> None:
        self.settings = settings
        self.events = events
        self.lock = threading.RLock()
        #: Task threads wait here for ready jobs.
        self.work_ready = threading.Condition(self.lock)
        #: The fetch loop waits here for free slots, wake-ups and the end of a drain.
        self.fetch_wake = threading.Condition(self.lock)
        #: The flusher waits here for outcomes.
        self.flush_wake = threading.Condition(self.lock)
        #: The housekeeper waits here for the next deadline or heartbeat.
        self.house_wake = threading.Condition(self.lock)
        self.stats = WorkerStats()
        self.active = False
        self.finished = threading.Event()
        self.finished.set()
        self.reset("run")

    def reset(self, mode: Mode) -> None:
        """Start a new session: nothing held, nothing pending, no thread told to exit."""
        self.mode: Mode = mode
        self.stopping = False
        self.stop_grace: timedelta | None = None
        self.ready: deque[Job] = deque()
        self.running: dict[uuid.UUID, Run] = {}
        self.held: dict[uuid.UUID, Job] = {}
        self.pending: list[Pending] = []
        #: Flushes in progress (their outcomes are in neither ``pending`` nor gone yet).
        self.flushing = 0
        #: Task slots in use, abandoned attempts whose task has not returned included.
        self.busy = 0
        #: Outcomes of named-queue jobs not recorded yet. Their slots are kept (no
        #: claim, no buffered job fills them) until the outcome freed the queue: the
        #: flusher claims for them in that same transaction (``worker/handoff.py``),
        #: so the queue's next job can be among what they take, and start at once.
        self.settling = 0
        #: Heap of (deadline, sequence, run) for ``job_timeout``.
        self.deadlines: list[tuple[float, int, Run]] = []
        #: Started thread attempts waiting for a task thread to pick them up.
        self.handoff: deque[Run] = deque()
        #: Thread attempts handed out whose task has not returned yet.
        self.sync_in_flight = 0
        self.sequence = itertools.count()
        #: Someone asked the fetch loop to claim now (notification, poll, freed queue).
        self.wake = False
        #: The last claim found fewer jobs than it asked for.
        self.dry = False
        #: When the last claim came back short with as many named-queue jobs as it
        #: might take (``max_queued``), the slots it could fill then
        #: (:meth:`startable`): more queued jobs may be waiting for a slot, so a
        #: slot freeing beyond this lets the fetch loop claim before its poll.
        #: None after a claim that was short for want of jobs.
        self.capped_at: int | None = None
        #: A claim failed: it may have committed with its answer lost.
        self.suspect_orphans = False
        self.threads_exit = False
        self.flusher_exit = False
        self.house_exit = False
        #: Set to stop the listener, maintenance and cron threads.
        self.background_stop = threading.Event()
        self.task_threads: list[threading.Thread] = []
        self.service_threads: list[threading.Thread] = []
        #: After this monotonic time the flusher gives up on what it could not write.
        self.flush_deadline: float | None = None
        #: Moving averages the adaptive prefetch follows.
        self.task_seconds: float | None = None
        self.claim_seconds: float | None = None
        #: The prefetch in force now.
        self.prefetch = self.settings.prefetch
        #: Monotonic time at which the last round trip that refreshed every held
        #: lock was sent: no held lock expires before this plus the lock timeout.
        self.lease_from = time.monotonic()
        #: The worker gave its jobs up for want of the database and claims nothing.
        self.fenced = False

    # -- helpers used by several roles (call with ``lock`` held) -----------------------

    def running_low(self) -> bool:
        """Whether the claimed-but-unstarted buffer is low enough to claim more."""
        return len(self.ready) <= self.prefetch // 2

    def settled(self, batch: list[Pending]) -> None:
        """Note that the outcomes of ``batch`` left the worker (recorded or given up)."""
        self.settling -= sum(1 for p in batch if p.outcome.job.queue_name is not None)

    def drained(self) -> bool:
        """Whether nothing is claimed, running or waiting to be written."""
        return not (self.ready or self.running or self.pending or self.flushing)

    def startable(self) -> int:
        """Slots free for a claimed job now: claimable, less the jobs waiting to start."""
        return max(0, self.claimable_slots() - len(self.ready))

    def hold(self, claimed: list[Job]) -> None:
        """Count and hold jobs just claimed, by their claim id (call with the lock held)."""
        self.stats.claimed += len(claimed)
        for job in claimed:
            assert job.correlation_id is not None
            self.held[job.correlation_id] = job

    def note_claim(self, claimed: list[Job], asked: int, max_queued: int | None) -> None:
        """Mark the worker dry after a short claim, telling a cap on named-queue jobs apart.

        A claim short of ``asked`` because nothing else was claimable waits
        for a notification or the poll. One that also took ``max_queued``
        named-queue jobs may have left others only for want of a slot to
        start them in (call after the claimed jobs were dispatched).
        """
        self.dry = len(claimed) < asked
        queued = sum(1 for job in claimed if job.queue_name is not None)
        capped = self.dry and max_queued is not None and queued >= max_queued
        self.capped_at = self.startable() if capped else None

    def slot_freed_since_capped(self) -> bool:
        """Whether a slot freed since a claim cut short by the named-queue cap."""
        return self.capped_at is not None and self.startable() > self.capped_at

    def claimable_slots(self) -> int:
        """Task slots a claim may fill now (free, and not waiting for their queue's release)."""
        return self.settings.concurrency - self.busy - self.settling

    def queue_outcome(self, pending: Pending) -> None:
        """Hand an outcome to the flusher."""
        self.pending.append(pending)
        if pending.outcome.job.queue_name is not None:
            self.settling += 1
        if len(self.pending) == 1 or len(self.pending) >= FLUSH_BATCH:
            self.flush_wake.notify()

    def nudge(self) -> None:
        """Ask the fetch loop to claim now (takes the lock itself)."""
        with self.lock:
            self.wake = True
            self.fetch_wake.notify()

    def job_data(self, job: Job) -> dict[str, Any]:
        """The event fields that describe a job's attempt."""
        return {
            "task_identifier": job.task_identifier,
            "job_id": job.id,
            "attempt": job.attempts,
            "queue_name": job.queue_name,
            "worker_id": self.settings.worker_id,
        }


def elapsed_ms(started: float) -> int:
    """Milliseconds since the monotonic time ``started``."""
    return max(0, int((time.monotonic() - started) * 1000))


def ewma(average: float | None, sample: float) -> float:
    """Exponentially weighted moving average, so estimates follow changes within a few samples."""
    return sample if average is None else average + 0.1 * (sample - average)


__all__ = [
    "FLUSH_BATCH",
    "BlockSettlement",
    "Mode",
    "Pending",
    "Run",
    "WorkerSettings",
    "WorkerState",
    "elapsed_ms",
    "ewma",
    "log",
]
