"""SQLite: one writer at a time (WAL, busy timeout, immediate own transactions), text times."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Uuid,
    cast,
    event,
    exists,
    func,
    select,
    type_coerce,
)
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Dialect

from queuekit.dialects.base import OWN_TRANSACTION, first_preparation, on_each_connection
from queuekit.dialects.on_conflict import OnConflictSupport
from queuekit.errors import InvalidArgumentError
from queuekit.models import UTCDateTime

# SQLAlchemy stores SQLite timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'; SQLite's
# own clock has millisecond precision, so three zeros pad it to that format and
# text comparison orders both kinds of value alike.
_TIMESTAMP = "%Y-%m-%d %H:%M:%f"
BUSY_TIMEOUT_MS = 30_000


_threads = threading.local()
#: An open transaction of this thread: the asyncio task that began it (None
#: outside an event loop), and None when it holds the write lock from BEGIN,
#: else the connection's change count at BEGIN (it holds the lock once it wrote).
_Opened = tuple[int | None, int | None]


def _open_here() -> weakref.WeakKeyDictionary[Connection, _Opened]:
    """This thread's open transactions on SQLite engines."""
    found: weakref.WeakKeyDictionary[Connection, _Opened] | None = getattr(_threads, "open", None)
    if found is None:
        found = _threads.open = weakref.WeakKeyDictionary()
    return found


def _current_task() -> int | None:
    """The asyncio task running now: coroutines of one loop share its thread but not its waits."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None
    return None if task is None else id(task)


def _total_changes(connection: Connection) -> int | None:
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.total_changes
    return None


class SQLiteSupport(OnConflictSupport):
    """SQLite 3.35 and newer (RETURNING, ON CONFLICT), for one host."""

    name = "sqlite"
    dialect_insert = staticmethod(insert)

    def minimum_version(self, dialect: Dialect) -> tuple[str, tuple[int, ...]]:
        return "SQLite", (3, 35)  # RETURNING and ON CONFLICT

    def prepare_engine(self, engine: Engine) -> None:
        if not first_preparation(engine):
            return

        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin,
            # so that the "begin" hook below can take the write lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # PRAGMA synchronous is left alone: durability is the application's choice.
            cursor.close()

        on_each_connection(engine, _configure)

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # With the driver's own transaction handling off, every transaction
            # begins here. queuekit's own writing transactions take the write
            # lock up front: a deferred transaction that reads and then writes
            # can fail at once with SQLITE_BUSY when another writer got in
            # between, while BEGIN IMMEDIATE makes writers queue on the busy
            # timeout instead. queuekit's reads and the application's
            # transactions stay deferred, so readers never wait for a writer (WAL).
            dbapi_connection = connection.connection.dbapi_connection
            if isinstance(dbapi_connection, sqlite3.Connection) and (
                dbapi_connection.isolation_level is not None or dbapi_connection.in_transaction
            ):
                return
            own = connection.get_execution_options().get(OWN_TRANSACTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if own else "BEGIN")
            # An IMMEDIATE transaction holds the write lock from BEGIN; a deferred
            # one only once it has written (its total_changes moved).
            _open_here()[connection] = (
                _current_task(),
                None if own else _total_changes(connection),
            )

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _ended(connection: Connection) -> None:
            _open_here().pop(connection, None)

    def check_own_transaction(self, engine: Engine) -> None:
        # SQLite has one writer. A transaction of this thread that holds the
        # write lock would make queuekit's own transaction wait for it until
        # the busy timeout and then fail, every time: the thread waits for itself.
        # Other coroutines of the same thread hold their locks independently:
        # waiting for them is fine (aiosqlite waits off the event loop).
        database = engine.url.database
        task = _current_task()
        for connection, (opener, changes) in list(_open_here().items()):
            if connection.closed or not connection.in_transaction():
                continue
            if opener != task or connection.engine.url.database != database:
                continue
            if changes is None or _total_changes(connection) != changes:
                raise InvalidArgumentError(
                    "this thread has a transaction open on this SQLite database that holds "
                    "its write lock (a Session or Connection that wrote); SQLite allows one "
                    "writer, so a transaction of queuekit's own would wait for it and fail: "
                    "pass session= (that Session or Connection) to work in its transaction, "
                    "or commit it first"
                )

    def server_now(self) -> ColumnElement[datetime]:
        return type_coerce(func.strftime(_TIMESTAMP, "now").concat("000"), UTCDateTime())

    def add_ms(
        self, moment: ColumnElement[datetime], milliseconds: ColumnElement[int] | int
    ) -> ColumnElement[datetime]:
        modifier: ColumnElement[str] | str
        if isinstance(milliseconds, int):
            modifier = f"{milliseconds / 1000:+.3f} seconds"
        else:
            modifier = func.printf("%+.3f seconds", milliseconds / 1000.0)
        shifted = func.strftime(_TIMESTAMP, moment, modifier)
        return type_coerce(shifted.concat("000"), UTCDateTime())

    def ms_between(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[int]:
        days = func.julianday(end) - func.julianday(start)
        return cast(func.round(days * 86_400_000), BigInteger())

    def new_uuid(self) -> ColumnElement[uuid.UUID]:
        # UUIDs are stored as 32 hex digits here. Random hex digits around the
        # version digit (4) and a variant digit (8, 9, a or b) make a uuid4.
        def digits(count: int) -> ColumnElement[str]:
            return func.substr(func.lower(func.hex(func.randomblob((count + 1) // 2))), 1, count)

        variant = func.substr("89ab", 1 + func.abs(func.random()) % 4, 1)
        text = digits(12).concat("4").concat(digits(3)).concat(variant).concat(digits(15))
        return type_coerce(text, Uuid())

    def has_any_flag(self, flags_column: Column[Any], flags: Sequence[str]) -> ColumnElement[bool]:
        elements = func.json_each(flags_column).table_valued("value")
        return exists(select(1).select_from(elements).where(elements.c.value.in_(list(flags))))
