"""The :class:`Worker`: its public API, and how a working session starts and stops."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import URL, Engine
from sqlalchemy.pool import NullPool

from queuekit import defaults
from queuekit.connections import create_engine, label_connections, worker_budget
from queuekit.durations import Duration, parse_duration
from queuekit.errors import InvalidArgumentError, QueueKitError
from queuekit.events import Event, EventBus
from queuekit.maintenance import (
    DEFAULT_LOCK_TIMEOUT,
    Maintenance,
    fence_after,
    heartbeat_interval,
)
from queuekit.manager import JobManager
from queuekit.repository import Outcome
from queuekit.signals import stop_signals
from queuekit.types import WorkerStats
from queuekit.validation import check_int, check_names, check_worker_id
from queuekit.worker.context import ShutdownError, TaskFunction, task_kind
from queuekit.worker.fencing import Fence
from queuekit.worker.fetching import BOOKKEEPING_GRACE, Fetcher
from queuekit.worker.flushing import Flusher
from queuekit.worker.handoff import Handoff
from queuekit.worker.housekeeping import Housekeeper
from queuekit.worker.listening import LISTEN_TICK, Listener
from queuekit.worker.reporting import Reporter
from queuekit.worker.running import Runner
from queuekit.worker.state import Mode, Pending, WorkerSettings, WorkerState, elapsed_ms, log

_STAT_NAMES = tuple(WorkerStats.__dataclass_fields__)


class Worker:
    """Runs tasks for jobs claimed from ``manager``'s database.

    Args:
        manager: the queue.
        tasks: task identifier → ``fn(payload, ctx)`` or ``async def
            fn(payload, ctx)``. Returning a :class:`~queuekit.PartialSuccess`
            reports partial success, returning anything else completes the
            job, raising fails the attempt (retried with the manager's
            backoff until ``max_attempts``). Coroutine functions run on the
            worker's event loop, other functions on task threads.
        concurrency: attempts running at once, thread and async tasks
            together (task threads are started only for thread tasks).
        worker_id: the id claims are made under (unique among live
            workers: starting with the id of a worker seen within three
            heartbeat periods raises :class:`~queuekit.InvalidWorkerIdError`;
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
            It must match the maintenance that protects this worker's locks
            (default: both ten minutes): a worker that could refresh no lock
            for 3/4 of it gives its running jobs up (self-fencing, see
            :mod:`queuekit.worker.fencing`) and claims again once the
            database answers.
        history_retention: how long the attempts' history rows are kept.
        listen: on PostgreSQL, wake on LISTEN/NOTIFY (True) or only poll (False).
        listen_url: where to LISTEN instead of the manager's engine: a direct
            PostgreSQL URL when the manager's engine goes through a
            transaction-pooling PgBouncer, which cannot LISTEN. The worker
            makes that engine itself (keepalives on, see
            :func:`queuekit.connections.create_engine`).
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
        history_retention: Duration = defaults.HISTORY_RETENTION,
        listen: bool = True,
        listen_url: str | URL | None = None,
    ) -> None:
        if not isinstance(manager, JobManager):
            raise InvalidArgumentError(f"Worker needs a JobManager, not {type(manager).__name__}")
        if not isinstance(tasks, Mapping):
            raise InvalidArgumentError("tasks must be a mapping of task identifier to function")
        async_tasks: set[str] = set()
        for name, fn in tasks.items():
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(f"task identifiers must be non-empty strings: {name!r}")
            if task_kind(name, fn) == "async":
                async_tasks.add(name)
        concurrency = check_int(concurrency, name="concurrency", minimum=1)
        locks_expire = parse_duration(lock_timeout, name="lock_timeout", allow_zero=False)
        upkeep: Maintenance | None
        if isinstance(maintenance, Maintenance):
            upkeep = maintenance
        elif maintenance is True:
            upkeep = Maintenance(manager, lock_timeout=locks_expire)
        elif maintenance is False:
            upkeep = None
        else:
            raise InvalidArgumentError("maintenance must be True, False or a Maintenance")
        if not isinstance(listen, bool):
            raise InvalidArgumentError("listen must be True or False")
        listen_engine: Engine | None = None
        if listen and manager.dialect.notifies:
            listen_engine = (
                manager.engine
                if listen_url is None
                else create_engine(listen_url, poolclass=NullPool)
            )
        settings = WorkerSettings(
            manager=manager,
            tasks=dict(tasks),
            async_tasks=frozenset(async_tasks),
            concurrency=concurrency,
            worker_id=check_worker_id(worker_id if worker_id is not None else _default_id()),
            task_identifiers=check_names(task_identifiers, name="task_identifiers"),
            forbidden_flags=check_names(forbidden_flags, name="forbidden_flags"),
            poll_interval=parse_duration(poll_interval, name="poll_interval", allow_zero=False),
            job_timeout=(
                None if job_timeout is None else parse_duration(job_timeout, name="job_timeout")
            ),
            shutdown_timeout=parse_duration(shutdown_timeout, name="shutdown_timeout"),
            prefetch=(
                min(concurrency, 10)
                if prefetch is None
                else check_int(prefetch, name="prefetch", minimum=0)
            ),
            adaptive_prefetch=prefetch is None,
            lock_timeout=locks_expire,
            history_retention=parse_duration(history_retention, name="history_retention"),
            heartbeat_every=heartbeat_interval(locks_expire),
            fence_after=fence_after(locks_expire),
            maintenance=upkeep,
            listen_engine=listen_engine,
        )
        #: Listeners registered with :meth:`on`.
        self.events = EventBus()
        self._state = WorkerState(settings, self.events)
        self._reporter = Reporter(self._state)
        self._fence = Fence(self._state, self._reporter)
        self._housekeeper = Housekeeper(self._state, self._reporter, crontabs, self._fence)
        self._runner = Runner(self._state, self._spawn)
        self._fetcher = Fetcher(self._state, self._reporter, self._runner.dispatch)
        handoff = Handoff(
            self._state,
            self._reporter,
            self._runner.dispatch,
            self._fetcher.release,
            self._fetcher._wanted,
        )
        self._flusher = Flusher(self._state, self._reporter, handoff)
        self._listener = Listener(self._state, self._reporter)
        self._thread: threading.Thread | None = None
        #: The validated configuration.
        self.settings = settings
        self.manager = manager
        self.worker_id = settings.worker_id
        self.concurrency = settings.concurrency
        self.maintenance = settings.maintenance
        self.cron = self._housekeeper.cron
        #: Most database connections this worker holds at once (its tasks' own not included).
        self.connection_budget = worker_budget(
            maintenance=upkeep is not None,
            cron=self.cron is not None,
            listening=listen_engine is not None,
        )
        self._unlabel: Callable[[], None] = lambda: None

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
        with self._state.lock:
            return replace(self._state.stats)

    @property
    def running(self) -> bool:
        """Whether the worker is between start and the end of its shutdown."""
        return self._state.active

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
        still running then are failed with a :class:`ShutdownError` (an
        async task is also cancelled: ``asyncio.CancelledError`` inside it).
        Pending outcomes are flushed before it returns. Called from a task or
        an event listener, it asks for the stop and returns at once.
        """
        grace = None if timeout is None else parse_duration(timeout, name="timeout")
        self._request_stop(grace)
        if self._is_own_thread():
            return  # a task or an event listener: waiting here would wait for itself
        self._state.finished.wait()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._thread = None

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
                self._housekeeper.guarded("cron", self.cron.fire_due)
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

    def _is_own_thread(self) -> bool:
        current = threading.current_thread()
        return self._runner.is_own_thread(current) or current is self.events.delivery_thread

    def _begin(self, mode: Mode) -> None:
        state = self._state
        with state.lock:
            if state.active:
                raise QueueKitError(f"worker {self.worker_id} is already running")
            # A stop() from now on belongs to this session and is not lost.
            state.reset(mode)
            state.active = True
            state.finished.clear()
        undo = [label_connections(self.manager.engine, self.worker_id)]
        listen_engine = self.settings.listen_engine
        if listen_engine is not None and listen_engine is not self.manager.engine:
            undo.append(label_connections(listen_engine, self.worker_id))

        def unlabel() -> None:
            for step in undo:
                step()

        self._unlabel = unlabel
        try:
            self.manager.check_database()
            # Refuses an id a live worker holds, before anything is claimed.
            self._housekeeper.register()
        except BaseException:
            self._unlabel()
            with state.lock:
                state.active = False
                state.finished.set()
            raise
        self._runner.start()
        self._spawn(self._flusher.loop, "flusher", state.service_threads)
        self._spawn(self._housekeeper.loop, "housekeeper", state.service_threads)
        self._spawn(self._fence.loop, "fence", state.service_threads)
        if mode == "run":
            if self.settings.listen_engine is not None:
                self._spawn(self._listener.loop, "listener", state.service_threads)
            self._housekeeper.start_background(self._spawn)
        log.info(
            "worker %s started (%s, concurrency %d, prefetch %d, up to %d database connections)",
            self.worker_id,
            mode,
            self.concurrency,
            self.settings.prefetch,
            self.connection_budget,
        )
        self._reporter.emit(
            "pool/start", {"worker_id": self.worker_id, "concurrency": self.concurrency}
        )

    @staticmethod
    def _spawn(target: Callable[[], None], name: str, into: list[threading.Thread]) -> None:
        thread = threading.Thread(target=target, name=f"queuekit-{name}", daemon=True)
        thread.start()
        into.append(thread)

    def _on_signal(self, force: bool) -> None:
        self._request_stop(timedelta(0) if force else None)

    def _request_stop(self, grace: timedelta | None) -> None:
        state = self._state
        with state.lock:
            if grace is not None:
                state.stop_grace = grace
            state.stopping = True
            state.fetch_wake.notify_all()
        state.background_stop.set()

    def _loop_then_shutdown(self) -> None:
        try:
            self._fetcher.loop()
        except BaseException:
            log.exception("worker %s fetch loop crashed", self.worker_id)
            raise
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Release unstarted jobs, let running tasks finish, flush, stop every thread."""
        state = self._state
        with state.lock:
            state.stopping = True
            grace = (
                state.stop_grace if state.stop_grace is not None else self.settings.shutdown_timeout
            )
            unstarted = list(state.ready)
            state.ready.clear()
            self._runner.stop_threads()
            for run in state.running.values():
                run.cancel(interrupt=False)  # cooperative until the grace runs out
        state.background_stop.set()
        if unstarted:
            self._fetcher.release(unstarted)
        task_deadline = time.monotonic() + grace.total_seconds()
        forced = False
        with state.lock:
            # Runs already failed by a timeout are not waited for: their task may never return.
            while state.running and time.monotonic() < task_deadline:
                state.fetch_wake.wait(task_deadline - time.monotonic())
            survivors = [
                run for run in state.running.values() if not run.abandoned and run.block is None
            ]
            for run in survivors:
                forced = True
                run.abandoned = True
                run.cancel(interrupt=True)
                assert run.job.correlation_id is not None
                del state.running[run.job.correlation_id]
                error = ShutdownError(
                    f"worker {self.worker_id} stopped after waiting {grace} for the task"
                )
                state.queue_outcome(
                    Pending(Outcome(run.job, "failed", elapsed_ms(run.started), error=error))
                )
            state.flush_deadline = time.monotonic() + BOOKKEEPING_GRACE
            state.flusher_exit = True
            state.flush_wake.notify_all()
        if survivors:
            log.warning(
                "%d task(s) still running after %s; their attempts were failed",
                len(survivors),
                grace,
            )
        for thread in state.service_threads:
            if thread.name == "queuekit-flusher":
                thread.join()
        self._runner.stop_loop()
        with state.lock:
            state.house_exit = True
            state.house_wake.notify_all()
            forced = forced or bool(state.held)
        for thread in state.service_threads:
            thread.join(LISTEN_TICK * 2 if thread.name != "queuekit-flusher" else None)
        self._housekeeper.guarded(
            "worker registry", lambda: self.manager.remove_worker(self.worker_id)
        )
        self._reporter.emit("pool/stop", {"worker_id": self.worker_id, "forced": forced})
        self.events.flush()
        log.info("worker %s stopped", self.worker_id)
        self._unlabel()
        with state.lock:
            state.active = False
        state.finished.set()


def _default_id() -> str:
    host = socket.gethostname() or "host"
    return f"{host[:200]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


__all__ = ["Worker"]
