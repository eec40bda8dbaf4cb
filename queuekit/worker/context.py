"""What a task sees: its :class:`JobContext`, and the errors the worker records for it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from queuekit.errors import InvalidArgumentError, QueueKitError
from queuekit.manager import JobManager
from queuekit.types import Job, PartialSuccess
from queuekit.worker.transaction import AttemptHooks, BlockState, TransactionBlock

TaskFunction = Callable[[dict[str, Any], "JobContext"], object]


class ShutdownError(QueueKitError):
    """The error recorded for a task still running when the worker's shutdown timeout ran out."""


class JobTimeoutError(QueueKitError, TimeoutError):
    """The error recorded for an attempt that overran ``job_timeout``."""


class AwaitableReturnedError(QueueKitError, TypeError):
    """The error recorded when a plain (non-``async``) task returns an awaitable.

    Its work never ran, so the attempt fails rather than completing.
    """


#: Makes the Condition of a :class:`CancelEvent` on first use, once.
_MAKING_CONDITIONS = threading.Lock()


class CancelEvent(threading.Event):
    """``ctx.cancelled``: a :class:`threading.Event` that async tasks can also await.

    Thread tasks call ``is_set()`` or ``wait(timeout)``; async tasks call
    ``is_set()`` or ``await ctx.cancelled.wait_async(timeout)``, which
    returns True once the event is set (False if ``timeout`` seconds passed
    first) without blocking the event loop.
    """

    def __init__(self) -> None:
        # Not threading.Event.__init__: its Condition (two locks) is made on first
        # use instead, as most attempts never set their event nor wait on it.
        self._flag = False
        self._made: threading.Condition | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()

    @property
    def _cond(self) -> threading.Condition:  # what threading.Event's methods use
        made = self._made
        if made is None:
            with _MAKING_CONDITIONS:
                made = self._made
                if made is None:
                    made = self._made = threading.Condition(threading.Lock())
        return made

    def set(self) -> None:
        """Set the event and wake every waiter, threads and coroutines alike."""
        super().set()
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Wait until the event is set; True if it is, False after ``timeout`` seconds."""
        if self.is_set():
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._waiters_lock:
            self._waiters.append(entry)
        try:
            if self.is_set():  # set between the first check and registering
                return True
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._waiters_lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class JobContext:
    """What a task receives besides its payload.

    Attributes:
        job: the claimed job (``job.attempts`` counts this attempt).
        worker_id: the id this worker claims under.
        manager: the JobManager, e.g. to enqueue follow-up jobs.
        cancelled: a :class:`CancelEvent` set when the attempt timed out,
            the worker is shutting down, or a heartbeat found the lock
            gone; a long task should check it and stop early (async tasks
            can ``await ctx.cancelled.wait_async()``).
        hooks: how :meth:`transaction` reports to the worker running the
            attempt (set by the worker; None for a context made elsewhere).
        transaction_state: ``"unused"``, ``"open"``, ``"committed"`` or
            ``"rolled back"``: what became of this attempt's :meth:`transaction`.
    """

    job: Job
    worker_id: str
    manager: JobManager
    cancelled: CancelEvent = field(default_factory=CancelEvent)
    hooks: AttemptHooks | None = field(default=None, repr=False, compare=False)
    transaction_state: BlockState = field(default="unused", compare=False)

    def heartbeat(self) -> bool:
        """Refresh this job's lock now; False (and ``cancelled`` set) if the lock was lost.

        The worker already refreshes every held lock periodically; call this
        only from a task that must prove liveness more often.
        """
        held = bool(self.manager.heartbeat(self.worker_id, [self.job]))
        if not held:
            self.cancelled.set()
        return held

    def transaction(self, session_factory: Callable[[], Any] | None = None) -> TransactionBlock:
        """A block whose transaction holds the task's writes *and* the job's completion.

        ``with ctx.transaction() as session:`` in a thread task, ``async with
        ctx.transaction(session_factory=an_async_sessionmaker) as session:``
        in an async task. ``session_factory`` is the application's
        sessionmaker (its events and settings apply); a thread task's default
        is a plain ``Session`` on the manager's engine, while an async task
        must pass one (the worker's engine is synchronous). On a clean exit
        the job is completed in that transaction (ownership-checked: history
        row closed, named queue freed) and it commits once; if the attempt
        lost its job, everything rolls back and :class:`~queuekit.LockLostError`
        is raised. An exception inside the block rolls back and fails the
        attempt as usual. One block per attempt. See ``docs/exactly-once.md``.
        """
        return TransactionBlock(self, session_factory)


TaskKind = Literal["sync", "async"]


def task_kind(name: str, fn: object) -> TaskKind:
    """Whether a task runs on a thread or on the event loop; a task that cannot run raises.

    Coroutine functions (and objects whose ``__call__`` is one) run on the
    worker's event loop; other callables on a thread.
    """
    if not callable(fn):
        raise InvalidArgumentError(
            f"the task for {name!r} is not callable ({type(fn).__name__}); map the task "
            "identifier to a function fn(payload, ctx)"
        )
    call = type(fn).__call__  # an object whose __call__ is a coroutine function
    if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(call):
        raise InvalidArgumentError(
            f"the task for {name!r} is an async generator function, which the worker cannot "
            "await; make it an 'async def' that returns instead of yielding"
        )
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call):
        return "async"
    return "sync"


def awaitable_problem(task_identifier: str, result: object) -> AwaitableReturnedError:
    """The error for a plain task that returned an awaitable, which is closed unrun."""
    if inspect.iscoroutine(result):
        result.close()  # no "never awaited" warning: the error says it all
    return AwaitableReturnedError(
        f"task {task_identifier!r} returned an awaitable ({type(result).__name__}) instead of "
        "running its work, so nothing ran; declare it with 'async def' so the worker awaits it, "
        "or make it return a plain value"
    )


def recordable(error: BaseException) -> BaseException | str:
    """The error itself, or a text naming it when even ``str(error)`` fails."""
    try:
        str(error)
    except Exception:
        return f"{type(error).__name__} (its message could not be rendered)"
    return error


def partial_problem(partial: PartialSuccess) -> str | None:
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


__all__ = [
    "AwaitableReturnedError",
    "CancelEvent",
    "JobContext",
    "JobTimeoutError",
    "ShutdownError",
    "TaskFunction",
    "TaskKind",
    "awaitable_problem",
    "partial_problem",
    "recordable",
    "task_kind",
]
