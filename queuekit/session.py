"""Running queuekit's statements in the caller's transaction or in a short one of its own."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from queuekit.dialects.base import OWN_TRANSACTION
from queuekit.errors import (
    CommitUnknownError,
    InvalidArgumentError,
    is_connection_lost,
    is_transient,
    translate_db_errors,
)

T = TypeVar("T")
SessionLike = Session | Connection | None
log = logging.getLogger("queuekit")

#: Attempts for an operation in queuekit's own transaction that hits a deadlock.
TRANSIENT_ATTEMPTS = 5


def check_session(session: object) -> None:
    """Refuse anything that is not a Session, a Connection or None."""
    if session is not None and not isinstance(session, Session | Connection):
        raise InvalidArgumentError(
            "session must be a sqlalchemy.orm.Session, a sqlalchemy Connection or None, "
            f"not {type(session).__name__}"
        )


def caller_connection(session: Session | Connection) -> Connection:
    """The Connection behind the caller's Session or Connection (its transaction begins)."""
    if isinstance(session, Session):
        return session.connection()
    return session


def on_transaction_end(session: Session | Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once when the caller's current transaction commits or rolls back."""
    fired = False

    def once(*_: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            callback()

    if isinstance(session, Session):
        event.listen(session, "after_commit", once, once=True)
        event.listen(session, "after_rollback", once, once=True)
    else:
        event.listen(session, "commit", once, once=True)
        event.listen(session, "rollback", once, once=True)


def after_transaction(
    conn: Connection,
    *,
    committed: Callable[[], None] | None = None,
    rolled_back: Callable[[], None] | None = None,
) -> None:
    """Call ``committed`` when ``conn``'s transaction commits, else ``rolled_back``.

    How in-process caches learn only from committed data: a fact read or
    written in a transaction is remembered when it commits, and dropped when
    it, or any savepoint within it, rolls back (dropping is always safe; the
    fact is read again). Only the first of these events counts.
    """
    done = False

    def on_commit(*_: Any) -> None:
        nonlocal done
        if not done:
            done = True
            if committed is not None:
                committed()

    def on_rollback(*_: Any) -> None:
        nonlocal done
        if not done:
            done = True
            if rolled_back is not None:
                rolled_back()

    event.listen(conn, "commit", on_commit, once=True)
    event.listen(conn, "rollback", on_rollback, once=True)
    event.listen(conn, "rollback_savepoint", on_rollback, once=True)


#: Tells, in a new transaction, whether the transaction that produced a result committed.
Confirm = Callable[[Connection, T], bool]


def result_stands(_conn: Connection, _result: object) -> bool:
    """The ``confirm`` of work that writes nothing: its result holds whether or not it committed."""
    return True


class _Retry(Exception):
    """Internal: an attempt that failed in a way worth repeating (``error`` says how)."""

    def __init__(self, error: sa_exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class _NotCommitted(_Retry):
    """Internal: a transaction whose COMMIT was lost turned out not to have committed."""


def _retried(once: Callable[[], T]) -> T:
    """Call ``once`` until it returns, up to TRANSIENT_ATTEMPTS times, pausing between tries.

    ``once`` raises :class:`_Retry` for a failure worth another try; the last
    such failure is raised as its own error.
    """
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return once()
        except _Retry as failed:
            if attempt == TRANSIENT_ATTEMPTS:
                raise failed.error from None
            log.debug("retrying after a transient database error: %s", failed.error.orig)
            time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


class Transactions:
    """Opens queuekit's own transactions on an engine and runs work in them.

    A failed own transaction is retried only when it is known not to have
    committed: the error came before COMMIT was sent, or the server answered
    COMMIT with a deadlock or serialization failure. When the connection is
    lost while COMMIT is in flight the outcome is unknown; the work's
    ``confirm`` then looks at the data to tell (and the result is returned,
    or the work retried), and without one :class:`CommitUnknownError` is
    raised, never a blind retry that could do the work twice.
    """

    def __init__(
        self,
        engine: Engine,
        on_begin: Callable[[Connection], None],
        check: Callable[[Engine], None] = lambda _: None,
    ) -> None:
        self.engine = engine
        self.on_begin = on_begin
        self.check = check

    @contextmanager
    def begin(self, *, reading: bool = False) -> Iterator[Connection]:
        """A connection in a new transaction, committed on success.

        A ``reading`` transaction (work that writes nothing) is not marked as
        queuekit's own: on SQLite it stays deferred and reads its WAL snapshot
        without the write lock, instead of queueing behind every writer.
        """
        with self.engine.connect() as conn:
            if not reading:
                conn.execution_options(**{OWN_TRANSACTION: True})
            with conn.begin():
                self.on_begin(conn)
                yield conn

    def run(
        self,
        session: SessionLike,
        work: Callable[[Connection], T],
        *,
        confirm: Confirm[T] | None = None,
        reading: bool = False,
    ) -> T:
        """Run ``work`` in the caller's transaction, or in our own (retried when safe).

        ``reading``: the work writes nothing (see :meth:`begin`).
        """
        check_session(session)
        with translate_db_errors():
            if session is not None:
                return work(caller_connection(session))
            self.check(self.engine)

            def once() -> T:
                try:
                    return self._once(work, confirm, reading)
                except sa_exc.DBAPIError as error:
                    if not is_transient(error):
                        raise
                    raise _Retry(error) from error

            return _retried(once)

    def run_alone(self, work: Callable[[Connection], T]) -> T:
        """Run ``work``, one statement, in autocommit: the statement commits by itself.

        One round trip instead of three (no BEGIN, no COMMIT of its own), for
        work whose single statement is complete by itself. A statement the
        server rolled back (deadlock, serialization failure) is retried. When
        the connection is lost the outcome is unknown and the error is raised,
        never retried: only a caller that can find what such a statement did
        may use this (the worker releases jobs held under its id that it does
        not know).
        """
        with translate_db_errors():
            self.check(self.engine)

            def once() -> T:
                started = False
                try:
                    with self.engine.connect() as conn:
                        conn.execution_options(isolation_level="AUTOCOMMIT")
                        started = True
                        return work(conn)
                except sa_exc.DBAPIError as error:
                    # Failing to connect is retried like any transient error.
                    if (started and is_connection_lost(error)) or not is_transient(error):
                        raise
                    raise _Retry(error) from error

            return _retried(once)

    def _once(
        self, work: Callable[[Connection], T], confirm: Confirm[T] | None, reading: bool
    ) -> T:
        """One own transaction; an unknown COMMIT outcome is settled or raised."""
        committing = False
        try:
            with self.begin(reading=reading) as conn:
                result = work(conn)
                committing = True  # leaving the block sends COMMIT
        except sa_exc.DBAPIError as failed:
            if not committing or not is_connection_lost(failed):
                raise  # before COMMIT, or the server answered it with an error: rolled back
            lost = failed
        else:
            return result
        if confirm is None:
            raise CommitUnknownError(
                f"the connection was lost during COMMIT ({lost.orig}); the work may or may not "
                "have been saved: check the data before repeating the call"
            ) from lost
        try:
            with self.begin() as conn:
                committed = confirm(conn, result)
        except sa_exc.DBAPIError as failed:
            raise CommitUnknownError(
                f"the connection was lost during COMMIT ({lost.orig}), and checking whether it "
                f"was saved failed too ({failed.orig}): check the data before repeating the call"
            ) from failed
        if not committed:
            raise _NotCommitted(lost)
        log.warning("the connection was lost during COMMIT; the data shows it was saved")
        return result
