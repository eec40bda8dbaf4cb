"""The worker: claims jobs, runs their tasks, records outcomes.

One :class:`Worker` is a few threads, each with one role, sharing one
:class:`~queuekit.worker.state.WorkerState` (read that module first):

- :mod:`~queuekit.worker.lifecycle` — the public :class:`Worker` API, and
  how a session starts and shuts down;
- :mod:`~queuekit.worker.fetching` — the *fetch loop* (the thread that
  called ``run``/``drain``) claims as many jobs as there are idle task
  slots, plus a small prefetch, and is the only thread that claims or
  releases;
- :mod:`~queuekit.worker.running` — starts attempts in free slots (at most
  ``concurrency``): plain functions on *task threads* started on demand,
  coroutine functions on the worker's own *event loop* thread;
- :mod:`~queuekit.worker.flushing` — the *flusher* writes outcomes in
  batches, one transaction per flush, and keeps them (retrying with
  backoff) while the database is unreachable;
- :mod:`~queuekit.worker.housekeeping` — the *housekeeper* refreshes the
  locks of every held job (heartbeats), stops attempts whose lock was
  taken away, and enforces ``job_timeout``; plus
  the optional *maintenance* and *cron* threads;
- :mod:`~queuekit.worker.listening` — on PostgreSQL a *listener* waits on
  LISTEN/NOTIFY and wakes the fetch loop; every dialect also polls every
  ``poll_interval``;
- :mod:`~queuekit.worker.context` — what a task receives (:class:`JobContext`);
- :mod:`~queuekit.worker.transaction` — ``ctx.transaction()``: the task's
  writes and its job's completion in one transaction, and
  :mod:`~queuekit.worker.settling` — how the worker then leaves that
  attempt alone;
- :mod:`~queuekit.worker.reporting` — events, outcome log lines and the
  worker's own errors.

Timeouts, shutdown and lost locks set the attempt's ``ctx.cancelled``. An
async task is also cancelled for real (``asyncio.CancelledError`` inside
it); a thread cannot be killed, so a thread task that ignores
``ctx.cancelled`` keeps its thread (one fewer slot) until it returns, and
its late result is discarded. Since the job may be retried or re-claimed
meanwhile, tasks with side effects should check ``ctx.cancelled``.
"""

from __future__ import annotations

from queuekit.worker.context import (
    AwaitableReturnedError,
    CancelEvent,
    JobContext,
    JobTimeoutError,
    ShutdownError,
    TaskFunction,
)
from queuekit.worker.lifecycle import Worker

__all__ = [
    "AwaitableReturnedError",
    "CancelEvent",
    "JobContext",
    "JobTimeoutError",
    "ShutdownError",
    "TaskFunction",
    "Worker",
]
