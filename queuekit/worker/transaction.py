"""Transactional completion: a task's own writes and its job's completion in one transaction.

``with ctx.transaction() as session:`` (``async with`` in an async task)
hands the task a SQLAlchemy session in a new transaction. On a clean exit
the block flushes the task's writes, completes the job in that same
transaction — through the manager's ownership-checked completion, so the
history row is closed and a named queue freed exactly as the worker would
— and commits once. Either both the writes and the completion are in the
database or neither is: a crash, a lost lock or a reset between the two
can no longer make the job run again after its writes were committed.

- If the attempt no longer owns its job (the lock was reset, unlocked,
  failed, cancelled or re-claimed; or the worker settled the attempt
  because it timed out, shut down or fenced itself), everything rolls back
  and the block raises :class:`~queuekit.LockLostError`. The job runs (or
  ran) again under its new owner.
- An exception inside the block rolls the writes back and propagates: the
  attempt fails as usual (retry with backoff, history).
- After a committed block the attempt is settled: the worker records
  nothing more for it. What the task does afterwards cannot change the
  outcome; returning :class:`~queuekit.PartialSuccess` or raising after
  the block is logged as an error and the job stays completed.
- One block per attempt: a second ``ctx.transaction()`` raises
  :class:`~queuekit.InvalidArgumentError` before it opens anything. A block
  refused before its transaction began (a bad ``session_factory``) does
  not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from queuekit.errors import InvalidArgumentError, LockLostError
from queuekit.repository import Outcome

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from queuekit.worker.context import JobContext

BlockState = Literal["unused", "open", "committed", "rolled back"]


class AttemptHooks(Protocol):
    """How a block tells the worker running the attempt what it did.

    The worker implements it (:mod:`queuekit.worker.settling`); a context
    made outside a worker has none, and its block only commits.
    """

    def elapsed_ms(self) -> int:
        """Milliseconds the attempt has run so far."""

    def before_commit(self) -> None:
        """Raise LockLostError if the worker already settled the attempt; else hold it open."""

    def committed(self, outcome: Outcome) -> None:
        """The block committed ``outcome``: record nothing more for this attempt."""

    def rolled_back(self, *, lost: bool) -> None:
        """The block's commit did not happen; ``lost``: because the job is no longer ours."""


class TransactionBlock:
    """What ``ctx.transaction()`` returns: a context manager for ``with`` and ``async with``."""

    def __init__(self, context: JobContext, session_factory: Callable[[], Any] | None) -> None:
        if session_factory is not None and not callable(session_factory):
            raise InvalidArgumentError(
                "session_factory must be a sessionmaker (async_sessionmaker in an async task) "
                f"or a callable returning a Session, not {type(session_factory).__name__}"
            )
        self.context = context
        self.session_factory = session_factory
        self._session: Any = None
        self._started = time.monotonic()

    # -- with ---------------------------------------------------------------------

    def __enter__(self) -> Session:
        if _on_event_loop():
            raise InvalidArgumentError(
                "ctx.transaction() in an async task is used with 'async with', which yields "
                "an AsyncSession; a plain 'with' would block the event loop"
            )
        self._open()
        factory = self.session_factory or self._default_session
        session = self._make(factory)
        if not isinstance(session, Session):
            self.context.transaction_state = "unused"
            raise InvalidArgumentError(
                "session_factory must return a sqlalchemy.orm.Session for 'with "
                f"ctx.transaction()', not {type(session).__name__} (an AsyncSession needs "
                "'async with' in an async task)"
            )
        self._session = session
        try:
            self._check_bind(session)
            if not session.in_transaction():
                session.begin()
            if self.session_factory is None:
                # queuekit's own transaction: set up as the manager sets up its own
                # (MySQL/MariaDB: READ COMMITTED); a host's session keeps its settings.
                self.context.manager.dialect.begin_transaction(session.connection())
        except BaseException:
            session.close()
            self.context.transaction_state = "unused"
            raise
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session: Session = self._session
        try:
            if exc_type is not None:
                session.rollback()
                self.context.transaction_state = "rolled back"
                return
            try:
                session.flush()  # the task's own errors surface before the job is touched
                outcome = self._outcome()
                self._before_commit()
                finished = self.context.manager.finish_jobs(
                    self.context.worker_id, [outcome], session=session
                )
                if not finished:
                    raise self._lost()
                session.commit()
            except BaseException as error:
                self._rolled_back(error, session.rollback)
                raise
            self._committed(outcome)
        finally:
            session.close()

    # -- async with ---------------------------------------------------------------

    async def __aenter__(self) -> AsyncSession:
        from sqlalchemy.ext.asyncio import AsyncSession

        if self.session_factory is None:
            raise InvalidArgumentError(
                "'async with ctx.transaction()' needs session_factory=an async_sessionmaker "
                "(or a callable returning an AsyncSession) bound to an AsyncEngine on the "
                "queue's database; the worker's own engine is synchronous"
            )
        self._open()
        session = self._make(self.session_factory)
        if not isinstance(session, AsyncSession):
            self.context.transaction_state = "unused"
            raise InvalidArgumentError(
                "session_factory must return a sqlalchemy AsyncSession for 'async with "
                f"ctx.transaction()' (an async_sessionmaker), not {type(session).__name__}"
            )
        self._session = session
        try:
            self._check_bind(session.sync_session)
            if not session.in_transaction():
                await session.begin()
        except BaseException:
            await session.close()
            self.context.transaction_state = "unused"
            raise
        return session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session: AsyncSession = self._session
        try:
            if exc_type is not None:
                await session.rollback()
                self.context.transaction_state = "rolled back"
                return
            manager, worker_id = self.context.manager, self.context.worker_id
            try:
                await session.flush()
                outcome = self._outcome()
                self._before_commit()
                finished = await session.run_sync(
                    lambda sync: manager.finish_jobs(worker_id, [outcome], session=sync)
                )
                if not finished:
                    raise self._lost()
                await session.commit()
            except BaseException as error:
                self._rolled_back(error, None)
                with contextlib.suppress(Exception):  # a dead connection: closing discards it
                    await session.rollback()
                raise
            self._committed(outcome)
        finally:
            await session.close()

    # -- shared steps ---------------------------------------------------------------

    def _open(self) -> None:
        """Allow one block per attempt."""
        context = self.context
        if context.transaction_state != "unused":
            raise InvalidArgumentError(
                f"ctx.transaction() was already used in this attempt of job {context.job.id} "
                f"({context.transaction_state}); an attempt has one transactional block: put "
                "all of the task's database writes in it"
            )
        context.transaction_state = "open"

    def _make(self, factory: Callable[[], Any]) -> Any:
        try:
            return factory()
        except BaseException:
            self.context.transaction_state = "unused"
            raise

    def _default_session(self) -> Session:
        return Session(bind=self.context.manager.engine)

    def _check_bind(self, session: Session) -> None:
        """Refuse a session on another kind of database than the manager's."""
        try:
            bind = session.get_bind()
        except sa_exc.UnboundExecutionError as error:
            raise InvalidArgumentError(
                "the session from session_factory is bound to no engine; bind the "
                "sessionmaker to the application's (and the queue's) engine"
            ) from error
        ours = self.context.manager.engine.dialect.name
        if bind.dialect.name != ours:
            raise InvalidArgumentError(
                f"the session from session_factory is bound to a {bind.dialect.name} database, "
                f"but the job lives in {ours}; the writes and the completion must share one "
                "database, so bind the sessionmaker to the application's (and the queue's) engine"
            )

    def _outcome(self) -> Outcome:
        hooks = self.context.hooks
        elapsed = (
            hooks.elapsed_ms()
            if hooks is not None
            else max(0, int((time.monotonic() - self._started) * 1000))
        )
        return Outcome(self.context.job, "completed", elapsed)

    def _before_commit(self) -> None:
        hooks = self.context.hooks
        if hooks is not None:
            hooks.before_commit()

    def _lost(self) -> LockLostError:
        job = self.context.job
        self.context.cancelled.set()
        return LockLostError(
            f"job {job.id} ({job.task_identifier}) is no longer held by this attempt "
            f"(worker {self.context.worker_id}); its writes were rolled back and the job runs "
            "again under its new owner"
        )

    def _rolled_back(self, error: BaseException, rollback: Callable[[], None] | None) -> None:
        self.context.transaction_state = "rolled back"
        hooks = self.context.hooks
        if hooks is not None:
            hooks.rolled_back(lost=isinstance(error, LockLostError))
        if rollback is not None:
            with contextlib.suppress(Exception):  # a dead connection: closing discards it
                rollback()

    def _committed(self, outcome: Outcome) -> None:
        self.context.transaction_state = "committed"
        hooks = self.context.hooks
        if hooks is not None:
            hooks.committed(outcome)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["AttemptHooks", "BlockState", "TransactionBlock"]
