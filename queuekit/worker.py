"""The worker: claims jobs, runs their tasks on a bounded thread pool, records outcomes.

Threads of one running worker:

- the *fetch loop* (the thread that called :meth:`Worker.run` or
  :meth:`Worker.drain`) claims as many jobs as there are idle task threads,
  plus a small prefetch, and is the only thread that claims or releases;
- ``concurrency`` *task threads* run tasks;
- the *flusher* writes outcomes in batches, one transaction per flush, and
  keeps them (retrying with backoff) while the database is unreachable;
- the *housekeeper* refreshes the locks of every held job (heartbeats) and
  enforces ``job_timeout``;
- on PostgreSQL a *listener* waits on LISTEN/NOTIFY and wakes the fetch
  loop; every dialect also polls every ``poll_interval``;
- optional *maintenance* and *cron* threads.

Timeouts are cooperative. When a task overruns ``job_timeout`` its attempt
is failed at once (``job/timeout``, then ``job/failed``) and its
``ctx.cancelled`` event is set, but Python cannot kill a thread: a task
that ignores ``ctx.cancelled`` keeps its thread (one fewer slot) until it
returns, and its late result is discarded. Since the failed job may be
retried meanwhile, tasks with side effects should check ``ctx.cancelled``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from queuekit.cron import CronFiring, CronScheduler
from queuekit.durations import Duration, parse_duration
from queuekit.errors import InvalidArgumentError, QueueKitError, TransientDatabaseError
from queuekit.events import Event, EventBus
from queuekit.maintenance import DEFAULT_LOCK_TIMEOUT, Maintenance, heartbeat_interval
from queuekit.manager import JobManager
from queuekit.repository import FinishedJob, Outcome
from queuekit.signals import stop_signals
from queuekit.types import Job, PartialSuccess, WorkerStats
from queuekit.validation import check_int, check_names, check_worker_id

log = logging.getLogger("queuekit.worker")

TaskFunction = Callable[[dict[str, Any], "JobContext"], object]

#: Outcomes written per transaction at most.
FLUSH_BATCH = 500
#: How long the flusher lets outcomes gather before writing them.
FLUSH_WINDOW = 0.004
#: Jobs per heartbeat statement.
HEARTBEAT_CHUNK = 500
#: Consecutive failed flushes after which the flusher looks for an unwritable outcome.
POISON_AFTER = 3
#: Backoff bounds (seconds) after a database error.
MIN_BACKOFF = 0.05
MAX_BACKOFF = 5.0
#: Most jobs the adaptive prefetch holds beyond the idle task threads.
ADAPTIVE_PREFETCH_MAX = 500
#: Time the final release and flush may take after the task threads stopped.
BOOKKEEPING_GRACE = 5.0
#: How often the listener thread checks whether it should stop.
LISTEN_TICK = 0.5


class ShutdownError(QueueKitError):
    """The error recorded for a task still running when the worker's shutdown timeout ran out."""


class JobTimeoutError(QueueKitError, TimeoutError):
    """The error recorded for an attempt that overran ``job_timeout``."""


@dataclass
class JobContext:
    """What a task receives besides its payload.

    Attributes:
        job: the claimed job (``job.attempts`` counts this attempt).
        worker_id: the id this worker claims under.
        manager: the JobManager, e.g. to enqueue follow-up jobs.
        cancelled: set when the attempt timed out, the worker is shutting
            down, or a heartbeat found the lock gone; a long task should
            check it and stop early.
    """

    job: Job
    worker_id: str
    manager: JobManager
    cancelled: threading.Event = field(default_factory=threading.Event)

    def heartbeat(self) -> bool:
        """Refresh this job's lock now; False (and ``cancelled`` set) if the lock was lost.

        The worker already refreshes every held lock periodically; call this
        only from a task that must prove liveness more often.
        """
        held = self.manager.heartbeat(self.worker_id, [self.job]) > 0
        if not held:
            self.cancelled.set()
        return held


@dataclass
class _Run:
    """A task attempt on a task thread."""

    job: Job
    context: JobContext
    started: float
    deadline: float | None
    #: Set when the worker has already recorded an outcome (timeout, shutdown)
    #: for this attempt, so the task's own result is dropped.
    abandoned: bool = False


@dataclass
class _Pending:
    """An outcome waiting to be flushed."""

    outcome: Outcome
    #: A flush of it failed before: that flush may have committed with its answer lost.
    retried: bool = False


Mode = Literal["run", "drain"]


class Worker:
    """Runs tasks for jobs claimed from ``manager``'s database.

    Args:
        manager: the queue.
        tasks: task identifier → ``fn(payload, ctx)``. Returning a
            :class:`~queuekit.PartialSuccess` reports partial success,
            returning anything else completes the job, raising fails the
            attempt (retried with the manager's backoff until
            ``max_attempts``).
        concurrency: task threads.
        worker_id: the id claims are made under (unique per worker;
            default ``host-pid-random``).
        task_identifiers: claim only these tasks (None: every task; a job
            whose task has no entry in ``tasks`` is then exhausted at once
            with ``no handler registered for task: <id>``, so workers
            serving different task sets must pass this).
        forbidden_flags: never claim jobs carrying one of these flags.
        poll_interval: how often to look for jobs when idle (on PostgreSQL
            notifications wake the worker sooner).
        job_timeout: an attempt running longer fails (None: no limit).
        shutdown_timeout: how long :meth:`stop` waits for running tasks.
        maintenance: run the maintenance loop in this worker (True), not at
            all (False), or a configured :class:`~queuekit.Maintenance`.
        crontabs: recurring jobs, :class:`~queuekit.CronJob` values or
            ``(identifier, schedule, payload, options)`` tuples.
        prefetch: jobs claimed beyond the idle task threads, so threads
            never wait for a claim. None (the default) adapts it: at least
            ``min(concurrency, 10)``, up to what the threads finish during
            two claims (at most 500), so short tasks come in big batches.
            Claimed jobs that never start are released on shutdown.
        lock_timeout: locks older than this are reset by maintenance; this
            worker refreshes its locks every ``min(30 s, lock_timeout / 5)``.
        history_retention: how long the attempts' history rows are kept.
    """

    def __init__(
        self,
        manager: JobManager,
        tasks: Mapping[str, TaskFunction],
        *,
        concurrency: int = 10,
        worker_id: str | None = None,
        task_identifiers: Sequence[str] | None = None,
        forbidden_flags: Sequence[str] | None = None,
        poll_interval: Duration = "2 seconds",
        job_timeout: Duration | None = "5 minutes",
        shutdown_timeout: Duration = "30 seconds",
        maintenance: bool | Maintenance = True,
        crontabs: Iterable[object] = (),
        prefetch: int | None = None,
        lock_timeout: Duration = DEFAULT_LOCK_TIMEOUT,
        history_retention: Duration = "30 days",
    ) -> None:
        if not isinstance(manager, JobManager):
            raise InvalidArgumentError(f"Worker needs a JobManager, not {type(manager).__name__}")
        if not isinstance(tasks, Mapping):
            raise InvalidArgumentError("tasks must be a mapping of task identifier to function")
        for name, fn in tasks.items():
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(f"task identifiers must be non-empty strings: {name!r}")
            if not callable(fn):
                raise InvalidArgumentError(f"the task for {name!r} is not callable")
        self.manager = manager
        self.tasks: dict[str, TaskFunction] = dict(tasks)
        self.concurrency = check_int(concurrency, name="concurrency", minimum=1)
        self.worker_id = check_worker_id(worker_id if worker_id is not None else _default_id())
        self.task_identifiers = check_names(task_identifiers, name="task_identifiers")
        self.forbidden_flags = check_names(forbidden_flags, name="forbidden_flags")
        self.poll_interval = parse_duration(poll_interval, name="poll_interval", allow_zero=False)
        self.job_timeout = (
            None if job_timeout is None else parse_duration(job_timeout, name="job_timeout")
        )
        self.shutdown_timeout = parse_duration(shutdown_timeout, name="shutdown_timeout")
        self.prefetch = (
            min(self.concurrency, 10)
            if prefetch is None
            else check_int(prefetch, name="prefetch", minimum=0)
        )
        self._adaptive = prefetch is None
        self.lock_timeout = parse_duration(lock_timeout, name="lock_timeout", allow_zero=False)
        self.history_retention = parse_duration(history_retention, name="history_retention")
        if isinstance(maintenance, Maintenance):
            self.maintenance: Maintenance | None = maintenance
        elif maintenance is True:
            self.maintenance = Maintenance(manager, lock_timeout=self.lock_timeout)
        elif maintenance is False:
            self.maintenance = None
        else:
            raise InvalidArgumentError("maintenance must be True, False or a Maintenance")
        self.cron: CronScheduler | None = None
        cron = CronScheduler(
            manager, crontabs, on_fired=self._cron_fired, on_error=self._cron_error
        )
        if cron.entries:
            self.cron = cron
        self.events = EventBus()
        self._heartbeat_every = heartbeat_interval(self.lock_timeout)

        self._lock = threading.RLock()
        self._work_ready = threading.Condition(self._lock)  # task threads wait here
        self._fetch_wake = threading.Condition(self._lock)  # the fetch loop waits here
        self._flush_wake = threading.Condition(self._lock)  # the flusher waits here
        self._house_wake = threading.Condition(self._lock)  # the housekeeper waits here
        self._stats = WorkerStats()
        self._active = False
        self._finished = threading.Event()
        self._finished.set()
        self._thread: threading.Thread | None = None
        self._reset_session("run")

    # -- public API ---------------------------------------------------------------

    def on(self, name: str, listener: Callable[[Event], object]) -> None:
        """Call ``listener(event)`` for every event ``name`` (``"*"`` for all events).

        Listeners run on a delivery thread of their own, in emission order; an
        exception in one is logged and never reaches the worker.
        """
        self.events.on(name, listener)

    @property
    def stats(self) -> WorkerStats:
        """A snapshot of this worker's counters since it was created."""
        with self._lock:
            return replace(self._stats)

    @property
    def running(self) -> bool:
        """Whether the worker is between start and the end of its shutdown."""
        return self._active

    def run(self) -> None:
        """Work until SIGINT/SIGTERM (when called on the main thread) or :meth:`stop`."""
        self._begin("run")
        with stop_signals(self._on_signal):
            self._loop_then_shutdown()

    def start(self) -> None:
        """Start working in a background thread; returns once the worker is up."""
        self._begin("run")
        self._thread = threading.Thread(
            target=self._loop_then_shutdown, name=f"queuekit-worker-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: Duration | None = None) -> None:
        """Stop gracefully and wait until stopped.

        Claimed jobs not yet started are released (their attempt is not
        consumed); running tasks get ``timeout`` (default
        ``shutdown_timeout``) to finish, with ``ctx.cancelled`` set; those
        still running then are failed with a :class:`ShutdownError`.
        Pending outcomes are flushed before it returns. Called from a task or
        an event listener, it asks for the stop and returns at once.
        """
        grace = None if timeout is None else parse_duration(timeout, name="timeout")
        self._request_stop(grace)
        if self._is_own_thread():
            return  # a task or an event listener: waiting here would wait for itself
        self._finished.wait()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._thread = None

    def _is_own_thread(self) -> bool:
        current = threading.current_thread()
        return current in self._task_threads or current is self.events.delivery_thread

    def drain(self) -> WorkerStats:
        """Process jobs until none is claimable, then stop; returns what this call did.

        Due cron slots fire first and, with maintenance on, one maintenance
        pass runs. Jobs waiting for a retry delay or a future ``run_at`` are
        not waited for. For tests and scripts; :attr:`stats` keeps the totals.
        """
        before = self.stats
        self._begin("drain")
        try:
            if self.cron is not None:
                self._guarded("cron", self.cron.fire_due)
            if self.maintenance is not None:
                self.maintenance.run_once()
        except BaseException:
            self._request_stop(None)
            self._shutdown()
            raise
        self._loop_then_shutdown()
        after = self.stats
        return WorkerStats(
            **{name: getattr(after, name) - getattr(before, name) for name in _STAT_NAMES}
        )

    # -- lifecycle --------------------------------------------------------------

    def _reset_session(self, mode: Mode) -> None:
        self._mode: Mode = mode
        self._stopping = False
        self._stop_grace: timedelta | None = None
        self._ready: deque[Job] = deque()
        self._running: dict[uuid.UUID, _Run] = {}
        self._held: dict[uuid.UUID, Job] = {}
        self._pending: list[_Pending] = []
        self._flushing = 0
        self._busy = 0
        self._deadlines: list[tuple[float, int, _Run]] = []
        self._sequence = itertools.count()
        self._wake = False
        self._dry = False
        self._suspect_orphans = False
        self._threads_exit = False
        self._flusher_exit = False
        self._house_exit = False
        self._background_stop = threading.Event()
        self._task_threads: list[threading.Thread] = []
        self._service_threads: list[threading.Thread] = []
        self._flush_deadline: float | None = None
        self._task_seconds: float | None = None
        self._claim_seconds: float | None = None
        self._prefetch = self.prefetch

    def _begin(self, mode: Mode) -> None:
        with self._lock:
            if self._active:
                raise QueueKitError(f"worker {self.worker_id} is already running")
            # A stop() from now on belongs to this session and is not lost.
            self._reset_session(mode)
            self._active = True
            self._finished.clear()
        try:
            self.manager.check_database()
        except BaseException:
            with self._lock:
                self._active = False
                self._finished.set()
            raise
        for number in range(self.concurrency):
            self._spawn(self._task_loop, f"task-{number}", self._task_threads)
        self._spawn(self._flush_loop, "flusher", self._service_threads)
        self._spawn(self._house_loop, "housekeeper", self._service_threads)
        if mode == "run":
            if self.manager.dialect.notifies:
                self._spawn(self._listen_loop, "listener", self._service_threads)
            if self.maintenance is not None:
                upkeep = self.maintenance
                upkeep.on_error = self._maintenance_error
                stop = self._background_stop
                self._spawn(lambda: upkeep.run_until(stop), "maintenance", self._service_threads)
            if self.cron is not None:
                cron, stop = self.cron, self._background_stop
                self._spawn(lambda: cron.run_until(stop), "cron", self._service_threads)
        log.info(
            "worker %s started (%s, concurrency %d, prefetch %d)",
            self.worker_id,
            mode,
            self.concurrency,
            self.prefetch,
        )
        self._emit("pool/start", {"worker_id": self.worker_id, "concurrency": self.concurrency})

    def _spawn(self, target: Callable[[], None], name: str, into: list[threading.Thread]) -> None:
        thread = threading.Thread(target=target, name=f"queuekit-{name}", daemon=True)
        thread.start()
        into.append(thread)

    def _on_signal(self, force: bool) -> None:
        self._request_stop(timedelta(0) if force else None)

    def _request_stop(self, grace: timedelta | None) -> None:
        with self._lock:
            if grace is not None:
                self._stop_grace = grace
            self._stopping = True
            self._fetch_wake.notify_all()
        self._background_stop.set()

    def _loop_then_shutdown(self) -> None:
        try:
            self._fetch_loop()
        except BaseException:
            log.exception("worker %s fetch loop crashed", self.worker_id)
            raise
        finally:
            self._shutdown()

    # -- the fetch loop -----------------------------------------------------------

    def _wanted(self) -> int:
        """Jobs to claim now: idle task threads plus prefetch, minus what is waiting."""
        idle = self.concurrency - self._busy
        want = idle + self._prefetch - len(self._ready)
        # Top up only once the buffer ran low, so claims come in useful batches.
        if want <= 0 or not self._running_low():
            return 0
        return want

    def _running_low(self) -> bool:
        """Whether the claimed-but-unstarted buffer is low enough to claim more."""
        return len(self._ready) <= self._prefetch // 2

    def _update_prefetch(self) -> None:
        """Recompute the prefetch: as configured, or enough to cover a claim's round trip.

        With tasks much shorter than a claim, task threads would wait for
        every claim; the adaptive prefetch holds about what they finish
        during two claims, so the buffer holds milliseconds of work, not more.
        """
        if not self._adaptive or self._task_seconds is None or self._claim_seconds is None:
            self._prefetch = self.prefetch
            return
        per_second = self.concurrency / max(self._task_seconds, 1e-6)
        covering = int(per_second * self._claim_seconds * 2)
        self._prefetch = max(self.prefetch, min(ADAPTIVE_PREFETCH_MAX, covering))

    def _drained(self) -> bool:
        return not (self._ready or self._running or self._pending or self._flushing)

    def _fetch_loop(self) -> None:
        backoff = MIN_BACKOFF
        next_poll = time.monotonic()
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    want = self._wanted()
                    if want and (not self._dry or self._wake):
                        break
                    if self._mode == "drain":
                        if self._dry and not self._wake and self._drained():
                            return
                        self._fetch_wake.wait()
                        continue
                    if not self._dry:
                        self._fetch_wake.wait()  # for an idle task thread
                        continue
                    remaining = next_poll - time.monotonic()
                    if remaining <= 0:
                        if not want:
                            # A poll is due but no slot is free: wait for one
                            # instead of spinning with the lock held.
                            self._fetch_wake.wait(self.poll_interval.total_seconds())
                            continue
                        self._wake = True  # poll
                        continue
                    self._fetch_wake.wait(remaining)
                self._wake = False
            next_poll = time.monotonic() + self.poll_interval.total_seconds()
            try:
                if self._suspect_orphans:
                    self._release_orphans()
                claim_started = time.monotonic()
                jobs = self.manager.get_jobs(
                    self.worker_id,
                    task_identifiers=self.task_identifiers,
                    forbidden_flags=self.forbidden_flags,
                    batch_size=want,
                    history_retention=self.history_retention,
                )
            except Exception as error:
                # The claim may have committed with its answer lost: look for such
                # jobs once the database answers again.
                self._suspect_orphans = True
                self._bookkeeping_error("claim", error)
                with self._lock:
                    if not self._stopping:
                        self._fetch_wake.wait(backoff)
                    self._wake = True
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            with self._lock:
                self._claim_seconds = _ewma(self._claim_seconds, time.monotonic() - claim_started)
                self._update_prefetch()
            self._accept(jobs, want)

    def _accept(self, jobs: list[Job], wanted: int) -> None:
        with self._lock:
            self._dry = len(jobs) < wanted
            if not jobs:
                return
            self._stats.claimed += len(jobs)
            for job in jobs:
                assert job.correlation_id is not None
                self._held[job.correlation_id] = job
            self._ready.extend(jobs)
            if len(jobs) == 1:
                self._work_ready.notify()
            else:
                self._work_ready.notify_all()
        if self.events.wants("job/claimed"):
            for job in jobs:
                self._emit("job/claimed", self._job_data(job))

    def _release_orphans(self) -> None:
        """Release jobs our worker id holds that we do not know (a claim answer was lost)."""
        held = self.manager.transactions.run(
            None, lambda conn: self.manager.repository.held_jobs(conn, self.worker_id)
        )
        with self._lock:
            orphans = [j for j in held if j.correlation_id not in self._held]
        if orphans:
            released = self.manager.release_jobs(self.worker_id, orphans)
            log.warning(
                "released %d job(s) claimed by a claim whose answer was lost", len(released)
            )
        self._suspect_orphans = False

    # -- task threads -------------------------------------------------------------

    def _task_loop(self) -> None:
        finished: _Run | None = None
        outcome: Outcome | None = None
        while True:
            with self._lock:
                if finished is not None:
                    self._finish_run(finished, outcome)
                    finished, outcome = None, None
                while not self._ready:
                    if self._threads_exit:
                        return
                    self._work_ready.wait()
                job = self._ready.popleft()
                run = self._start_run(job)
                if self._running_low():
                    self._fetch_wake.notify()
            outcome = self._execute(run)
            finished = run

    def _start_run(self, job: Job) -> _Run:
        context = JobContext(job, self.worker_id, self.manager)
        now = time.monotonic()
        deadline = None
        if self.job_timeout is not None:
            deadline = now + self.job_timeout.total_seconds()
        run = _Run(job, context, now, deadline)
        assert job.correlation_id is not None
        self._running[job.correlation_id] = run
        self._busy += 1
        if deadline is not None:
            earliest = self._deadlines[0][0] if self._deadlines else None
            heapq.heappush(self._deadlines, (deadline, next(self._sequence), run))
            if earliest is None or deadline < earliest:
                self._house_wake.notify()
        return run

    def _finish_run(self, run: _Run, outcome: Outcome | None) -> None:
        self._busy -= 1
        self._task_seconds = _ewma(self._task_seconds, time.monotonic() - run.started)
        if self._stopping or self._running_low():
            # A slot freed: the fetch loop may claim (or a shutdown stop waiting).
            self._fetch_wake.notify()
        if run.abandoned:
            log.warning(
                "task %s of job %s returned after its attempt was already recorded as failed",
                run.job.task_identifier,
                run.job.id,
            )
            return
        assert run.job.correlation_id is not None
        del self._running[run.job.correlation_id]
        if outcome is not None:
            self._queue_outcome(_Pending(outcome))

    def _queue_outcome(self, pending: _Pending) -> None:
        self._pending.append(pending)
        if len(self._pending) == 1 or len(self._pending) >= FLUSH_BATCH:
            self._flush_wake.notify()

    def _execute(self, run: _Run) -> Outcome:
        job = run.job
        task = self.tasks.get(job.task_identifier)
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
            return Outcome(job, "failed", _elapsed_ms(run.started), error=_recordable(error))
        elapsed = _elapsed_ms(run.started)
        if isinstance(result, PartialSuccess):
            problem = _partial_problem(result)
            if problem is not None:
                return Outcome(job, "failed", elapsed, error=InvalidArgumentError(problem))
            return Outcome(job, "partial_success", elapsed, partial=result)
        return Outcome(job, "completed", elapsed)

    # -- the flusher ----------------------------------------------------------------

    def _flush_loop(self) -> None:
        backoff = MIN_BACKOFF
        failures = 0
        while True:
            with self._lock:
                while not self._pending:
                    if self._flusher_exit:
                        return
                    self._flush_wake.wait()
                if self._flush_deadline is not None and time.monotonic() > self._flush_deadline:
                    self._give_up_pending()
                    continue
            if not self._flusher_exit:
                time.sleep(FLUSH_WINDOW)  # let a batch gather
            with self._lock:
                batch = self._pending[:FLUSH_BATCH]
                del self._pending[:FLUSH_BATCH]
                self._flushing += 1
            try:
                finished = self.manager.finish_jobs(self.worker_id, [p.outcome for p in batch])
            except Exception as error:
                failures += 1
                if failures >= POISON_AFTER and self._database_answers(error):
                    # The database works but refuses this batch: find the outcome it refuses.
                    self._flush_one_by_one(batch)
                    failures = 0
                    continue
                with self._lock:
                    for pending in batch:
                        pending.retried = True
                    self._pending[:0] = batch
                    self._flushing -= 1
                self._bookkeeping_error("flush", error)
                self._sleep_unless_exiting(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            failures = 0
            self._recorded(batch, finished)

    def _database_answers(self, error: BaseException) -> bool:
        """Whether a flush failure is specific to the batch (the database itself answers)."""
        if isinstance(error, TransientDatabaseError):
            return False
        try:
            self.manager.now()
        except Exception:
            return False
        return True

    def _flush_one_by_one(self, batch: list[_Pending]) -> None:
        """Flush each outcome alone; one the database keeps refusing is dropped and reported.

        Its job stays locked until the lock expires and then runs again:
        better than blocking every other outcome behind it forever.
        """
        recorded: list[_Pending] = []
        finished: list[FinishedJob] = []
        for pending in batch:
            try:
                finished += self.manager.finish_jobs(self.worker_id, [pending.outcome])
            except Exception as error:
                if not self._database_answers(error):
                    with self._lock:
                        self._pending[:0] = [p for p in batch if p not in recorded]
                        self._flushing -= 1
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
                self._bookkeeping_error("flush", error)
            recorded.append(pending)
        self._recorded(recorded, finished)

    def _applied_earlier(self, outcome: Outcome) -> FinishedJob | None:
        """The outcome as a flush whose answer was lost recorded it, or None if it did not."""
        job = outcome.job
        try:
            history = self.manager.job_history(job.id)
            record = next((h for h in history if h.correlation_id == job.correlation_id), None)
            if record is None or record.worker_id != self.worker_id:
                return None
            if record.status != outcome.kind:
                return None
            current = self.manager.get_job(job.id)
        except Exception:
            return None
        exhausted = current is not None and current.status == "exhausted"
        return FinishedJob(outcome, current or job, exhausted)

    def _recorded_partly(self, batch: list[_Pending], finished: list[FinishedJob]) -> None:
        with self._lock:
            self._flushing += 1  # _recorded settles one flush
        self._recorded(batch, finished)

    def _recorded(self, batch: list[_Pending], finished: list[FinishedJob]) -> None:
        applied = {f.outcome.job.correlation_id: f for f in finished}
        for pending in batch:
            if pending.retried and pending.outcome.job.correlation_id not in applied:
                confirmed = self._applied_earlier(pending.outcome)
                if confirmed is not None:
                    applied[pending.outcome.job.correlation_id] = confirmed
        events: list[tuple[str, dict[str, Any]]] = []
        wants = self.events.wants
        with self._lock:
            stats = self._stats
            for pending in batch:
                outcome = pending.outcome
                job = outcome.job
                self._held.pop(job.correlation_id, None)  # type: ignore[arg-type]
                result = applied.get(job.correlation_id)
                if result is None:
                    log.warning(
                        "job %s (%s) was no longer held by %s; its %s outcome was not recorded",
                        job.id,
                        job.task_identifier,
                        self.worker_id,
                        outcome.kind,
                    )
                    continue
                if outcome.kind == "completed":
                    stats.completed += 1
                    if wants("job/completed"):
                        events.append(("job/completed", self._outcome_data(outcome)))
                elif outcome.kind == "partial_success":
                    stats.partial_success += 1
                    if wants("job/partial-success"):
                        events.append(("job/partial-success", self._outcome_data(outcome)))
                else:
                    stats.failed += 1
                    if wants("job/failed"):
                        events.append(("job/failed", self._outcome_data(outcome)))
                if result.exhausted:
                    stats.exhausted += 1
                    if wants("job/exhausted"):
                        events.append(("job/exhausted", self._outcome_data(outcome)))
            self._flushing -= 1
            # A finished job frees its named queue: the queue's next job is claimable
            # now, with no notification to say so. A drain re-checks after every flush.
            if self._mode == "drain" or any(p.outcome.job.queue_name for p in batch):
                self._wake = True
                self._fetch_wake.notify()
        for name, data in events:
            self._emit(name, data)

    def _give_up_pending(self) -> None:
        lost = len(self._pending)
        log.error(
            "worker %s stopped with %d outcome(s) it could not record; those jobs run again "
            "once their lock expires",
            self.worker_id,
            lost,
        )
        for pending in self._pending:
            self._held.pop(pending.outcome.job.correlation_id, None)  # type: ignore[arg-type]
        self._pending.clear()
        self._fetch_wake.notify_all()

    def _sleep_unless_exiting(self, seconds: float) -> None:
        with self._lock:
            deadline = self._flush_deadline
            if deadline is not None:
                seconds = max(0.0, min(seconds, deadline - time.monotonic()))
            self._flush_wake.wait(seconds)

    # -- the housekeeper ----------------------------------------------------------

    def _house_loop(self) -> None:
        next_beat = time.monotonic() + self._heartbeat_every
        while True:
            expired: list[_Run] = []
            with self._lock:
                if self._house_exit:
                    return
                now = time.monotonic()
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, _, run = heapq.heappop(self._deadlines)
                    assert run.job.correlation_id is not None
                    if self._running.get(run.job.correlation_id) is run and not run.abandoned:
                        expired.append(run)
                for run in expired:
                    self._time_out(run)
                if not expired and now < next_beat:
                    wake_at = next_beat
                    if self._deadlines:
                        wake_at = min(wake_at, self._deadlines[0][0])
                    self._house_wake.wait(wake_at - now)
                    continue
            for run in expired:
                self._emit("job/timeout", {**self._job_data(run.job), "timeout": self._timeout_s()})
            if time.monotonic() >= next_beat:
                self._heartbeat()
                next_beat = time.monotonic() + self._heartbeat_every

    def _timeout_s(self) -> float | None:
        return None if self.job_timeout is None else self.job_timeout.total_seconds()

    def _time_out(self, run: _Run) -> None:
        """Fail an overrunning attempt now; its thread stays busy until the task returns."""
        run.abandoned = True
        run.context.cancelled.set()
        assert run.job.correlation_id is not None
        del self._running[run.job.correlation_id]
        self._stats.timed_out += 1
        error = JobTimeoutError(f"job timed out after {self.job_timeout}")
        log.warning(
            "job %s (%s) timed out after %s", run.job.id, run.job.task_identifier, self.job_timeout
        )
        self._queue_outcome(
            _Pending(Outcome(run.job, "failed", _elapsed_ms(run.started), error=error))
        )

    def _heartbeat(self) -> None:
        with self._lock:
            jobs = list(self._held.values())
        if not jobs:
            return
        for start in range(0, len(jobs), HEARTBEAT_CHUNK):
            try:
                self.manager.heartbeat(self.worker_id, jobs[start : start + HEARTBEAT_CHUNK])
            except Exception as error:
                self._bookkeeping_error("heartbeat", error)
                return

    # -- the listener -------------------------------------------------------------

    def _listen_loop(self) -> None:
        backoff = MIN_BACKOFF
        while not self._background_stop.is_set():
            try:
                listener = self.manager.dialect.open_listener(self.manager.engine)
            except Exception as error:
                self._bookkeeping_error("listen", error)
                self._background_stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if listener is None:
                return
            backoff = MIN_BACKOFF
            self._nudge()  # notifications sent while not listening are lost
            try:
                while not self._background_stop.is_set():
                    if listener.wait(LISTEN_TICK):
                        self._nudge()
            except Exception as error:
                self._bookkeeping_error("listen", error)  # reconnects; polling meanwhile
            finally:
                listener.close()

    def _nudge(self) -> None:
        with self._lock:
            self._wake = True
            self._fetch_wake.notify()

    # -- shutdown -----------------------------------------------------------------

    def _shutdown(self) -> None:
        """Release unstarted jobs, let running tasks finish, flush, stop every thread."""
        with self._lock:
            self._stopping = True
            grace = self._stop_grace if self._stop_grace is not None else self.shutdown_timeout
            unstarted = list(self._ready)
            self._ready.clear()
            self._threads_exit = True
            self._work_ready.notify_all()
            for run in self._running.values():
                run.context.cancelled.set()
        self._background_stop.set()
        if unstarted:
            self._release(unstarted)
        task_deadline = time.monotonic() + grace.total_seconds()
        forced = False
        with self._lock:
            # Runs already failed by a timeout are not waited for: their task may never return.
            while self._running and time.monotonic() < task_deadline:
                self._fetch_wake.wait(task_deadline - time.monotonic())
            survivors = [run for run in self._running.values() if not run.abandoned]
            for run in survivors:
                forced = True
                run.abandoned = True
                assert run.job.correlation_id is not None
                del self._running[run.job.correlation_id]
                error = ShutdownError(
                    f"worker {self.worker_id} stopped after waiting {grace} for the task"
                )
                self._queue_outcome(
                    _Pending(Outcome(run.job, "failed", _elapsed_ms(run.started), error=error))
                )
            self._flush_deadline = time.monotonic() + BOOKKEEPING_GRACE
            self._flusher_exit = True
            self._flush_wake.notify_all()
        if survivors:
            log.warning(
                "%d task(s) still running after %s; their attempts were failed",
                len(survivors),
                grace,
            )
        for thread in self._service_threads:
            if thread.name == "queuekit-flusher":
                thread.join()
        with self._lock:
            self._house_exit = True
            self._house_wake.notify_all()
            forced = forced or bool(self._held)
        for thread in self._service_threads:
            thread.join(LISTEN_TICK * 2 if thread.name != "queuekit-flusher" else None)
        self._emit("pool/stop", {"worker_id": self.worker_id, "forced": forced})
        self.events.flush()
        log.info("worker %s stopped", self.worker_id)
        with self._lock:
            self._active = False
        self._finished.set()

    def _release(self, jobs: list[Job]) -> None:
        deadline = time.monotonic() + BOOKKEEPING_GRACE
        backoff = MIN_BACKOFF
        while True:
            try:
                self.manager.release_jobs(self.worker_id, jobs)
            except Exception as error:
                self._bookkeeping_error("release", error)
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
        with self._lock:
            for job in jobs:
                self._held.pop(job.correlation_id, None)  # type: ignore[arg-type]

    # -- errors and events ----------------------------------------------------------

    def _bookkeeping_error(self, cause: str, error: BaseException) -> None:
        """A worker's own error (never a task's): logged, counted, emitted."""
        with self._lock:
            self._stats.errors += 1
        log.warning("worker %s: %s failed: %s", self.worker_id, cause, error)
        self._emit(
            "worker/error",
            {"worker_id": self.worker_id, "cause": cause, "error": str(error), "exception": error},
        )

    def _maintenance_error(self, step: str, error: BaseException) -> None:
        self._bookkeeping_error(f"maintenance {step}", error)

    def _cron_error(self, identifier: str, error: BaseException) -> None:
        self._bookkeeping_error(f"cron {identifier}", error)

    def _cron_fired(self, firing: CronFiring) -> None:
        self._emit(
            "cron/fired",
            {
                "identifier": firing.identifier,
                "task_identifier": firing.task_identifier,
                "job_id": firing.job_id,
                "slot": firing.slot,
                "worker_id": self.worker_id,
            },
        )
        self._nudge()

    def _guarded(self, cause: str, action: Callable[[], object]) -> None:
        try:
            action()
        except QueueKitError as error:
            self._bookkeeping_error(cause, error)

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.emit(name, data)

    def _job_data(self, job: Job) -> dict[str, Any]:
        return {
            "task_identifier": job.task_identifier,
            "job_id": job.id,
            "attempt": job.attempts,
            "queue_name": job.queue_name,
            "worker_id": self.worker_id,
        }

    def _outcome_data(self, outcome: Outcome) -> dict[str, Any]:
        data = self._job_data(outcome.job)
        data["execution_time_ms"] = outcome.execution_time_ms
        if outcome.kind == "failed":
            error = outcome.error
            data["error"] = (
                (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
            )
            if isinstance(error, BaseException):
                data["exception"] = error
        return data


_STAT_NAMES = tuple(WorkerStats.__dataclass_fields__)


def _ewma(average: float | None, sample: float) -> float:
    """Exponentially weighted moving average, so estimates follow changes within a few samples."""
    return sample if average is None else average + 0.1 * (sample - average)


def _elapsed_ms(started: float) -> int:
    return max(0, int((time.monotonic() - started) * 1000))


def _default_id() -> str:
    host = socket.gethostname() or "host"
    return f"{host[:200]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _recordable(error: BaseException) -> BaseException | str:
    """The error itself, or a text naming it when even ``str(error)`` fails."""
    try:
        str(error)
    except Exception:
        return f"{type(error).__name__} (its message could not be rendered)"
    return error


def _partial_problem(partial: PartialSuccess) -> str | None:
    """Why a returned PartialSuccess cannot be recorded, or None."""
    for name in ("completed_steps", "failed_steps"):
        steps = getattr(partial, name)
        if isinstance(steps, str) or not isinstance(steps, list | tuple):
            return f"PartialSuccess.{name} must be a list of strings"
        if not all(isinstance(step, str) for step in steps):
            return f"PartialSuccess.{name} must be a list of strings"
    if partial.retry_from_step is not None and not isinstance(partial.retry_from_step, str):
        return "PartialSuccess.retry_from_step must be a string or None"
    try:
        json.dumps(partial.results, allow_nan=False)
    except (TypeError, ValueError):
        return "PartialSuccess.results must be JSON-serialisable"
    return None


__all__ = ["JobContext", "JobTimeoutError", "ShutdownError", "TaskFunction", "Worker"]
