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
from queuekit.errors import InvalidArgumentError, is_transient, translate_db_errors

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


class Transactions:
    """Opens queuekit's own transactions on an engine and runs work in them."""

    def __init__(self, engine: Engine, on_begin: Callable[[Connection], None]) -> None:
        self.engine = engine
        self.on_begin = on_begin

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a new transaction, committed on success."""
        with self.engine.connect() as conn:
            conn.execution_options(**{OWN_TRANSACTION: True})
            with conn.begin():
                self.on_begin(conn)
                yield conn

    def run(self, session: SessionLike, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in the caller's transaction, or in our own (retried on deadlock)."""
        check_session(session)
        with translate_db_errors():
            if session is not None:
                return work(caller_connection(session))
            for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
                try:
                    with self.begin() as conn:
                        return work(conn)
                except sa_exc.DBAPIError as error:
                    if attempt == TRANSIENT_ATTEMPTS or not is_transient(error):
                        raise
                    log.debug("retrying after a transient database error: %s", error.orig)
                    time.sleep(random.uniform(0.005, 0.05) * attempt)
            raise AssertionError("unreachable")
