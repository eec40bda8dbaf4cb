"""What every dialect module implements (internal; :mod:`queuekit.dialects` lists it by purpose)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    event,
    false,
    literal,
    null,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

#: Execution option that marks a connection whose next transaction queuekit opens
#: for itself (not the application's), so a dialect may set that transaction up
#: differently when it begins (SQLite takes the write lock at once).
OWN_TRANSACTION = "queuekit_own_transaction"


class JsonText(str):
    """A JSON document already written as text (``json.dumps`` of it), for bulk loads."""

    __slots__ = ()


class Listener(Protocol):
    """A dedicated connection that waits for enqueue notifications."""

    def wait(self, timeout: float) -> list[float]:
        """Block up to ``timeout`` seconds; what arrived, as seconds until jobs are due.

        One entry per notification: 0.0 for jobs claimable now, else how long
        until the enqueued jobs' ``run_at`` (:meth:`DialectSupport.wake_up_values`);
        empty when nothing arrived. Raises the driver's error when the
        connection is lost; the caller closes this listener and opens a new one.
        """
        ...

    def close(self) -> None:
        """Stop listening and close the connection (never raises)."""
        ...


#: Marks an engine, and each pooled connection's record, that queuekit has set up.
_PREPARED_MARK = "_queuekit_prepared"


def first_preparation(engine: Engine) -> bool:
    """True the first time an engine is prepared (and marks it so); False after."""
    if getattr(engine, _PREPARED_MARK, False):
        return False
    setattr(engine, _PREPARED_MARK, True)
    return True


def on_each_connection(engine: Engine, configure: Callable[[Any, Any], None]) -> None:
    """Call ``configure(dbapi_connection, record)`` once per connection of the pool.

    On "checkout", not "connect": the application may have used the engine
    before queuekit saw it, and the connections already in its pool need the
    same set-up (done once per connection, remembered in its record).
    """

    @event.listens_for(engine, "checkout")
    def _configure(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(_PREPARED_MARK):
            return
        record.info[_PREPARED_MARK] = True
        configure(dbapi_connection, record)


class DialectSupport:
    """The dialect seam. Subclasses override what their database does differently."""

    #: Dialect family name: ``postgresql``, ``sqlite`` or ``mysql``.
    name: str = ""
    #: Isolation level for the transactions queuekit opens itself (None: driver default).
    isolation_level: str | None = None
    #: Whether enqueues wake workers (see :meth:`wake_up_values`) and :meth:`open_listener`
    #: gives a connection to wait on; elsewhere workers only poll.
    notifies: bool = False
    #: Whether ``insert_skipping_conflicts(...).returning(id)`` returns the inserted rows' ids
    #: (a skipped row may return the existing row's id, never the proposed one).
    skip_insert_returns_ids: bool = True

    def minimum_version(self, dialect: Dialect) -> tuple[str, tuple[int, ...]]:
        """The product this server is and the oldest version of it queuekit supports."""
        raise NotImplementedError

    def begin_transaction(self, connection: Connection) -> None:
        """Set up a transaction queuekit opened itself, before its first statement."""

    def prepare_engine(self, engine: Engine) -> None:
        """Apply per-connection set-up the queue relies on (called once per engine)."""

    #: Test-only clock hook; queuekit itself never sets it. When set, :meth:`now`
    #: adds the milliseconds it returns, read at each execution (so statements
    #: built once and reused follow it), and tests move the database clock
    #: forward instead of sleeping. Unset, it costs one attribute check.
    clock_offset_ms: Callable[[], int] | None = None

    def limit_statement_time(self, connection: Connection, milliseconds: int) -> None:
        """Make the server cancel any statement of the current transaction running longer.

        Read-only callers (the dashboard) use it so that no query of theirs can
        hold the database for long. The limit ends with the transaction, or
        with :meth:`clear_statement_time` where the server keeps it per session.
        The default does nothing (SQLite is a local file with no server to protect).
        """

    def prefer_index_reads(self, connection: Connection) -> None:
        """Have the planner read through an index wherever one serves, for this transaction.

        The dashboard's capped counts (``LIMIT 10,001``) look cheap to a
        planner as sequential scans that stop early whenever it guesses many
        rows match (a comparison of two columns is always guessed at a third),
        and which plan it picks then flips with small changes in statistics.
        Its reads are all meant to go through indexes; where the planner can
        be told so, they do. The default does nothing.
        """

    def clear_statement_time(self, connection: Connection) -> None:
        """Undo :meth:`limit_statement_time` where it outlives the transaction."""

    def client_connect_args(self, *, pooler: str | None) -> dict[str, Any]:
        """Driver connect arguments for an engine queuekit makes itself.

        ``pooler`` is ``"transaction"`` when connections go through a
        transaction-pooling proxy such as PgBouncer (then nothing may rely on
        session state). Empty where the dialect needs nothing.
        """
        return {}

    def connection_label(self, name: str) -> dict[str, Any]:
        """Connect arguments that name new connections after ``name`` on the server.

        Empty where the server has no such label.
        """
        return {}

    def check_own_transaction(self, engine: Engine) -> None:
        """Refuse, before it begins, an own transaction that could never get its locks."""

    def now(self) -> ColumnElement[datetime]:
        """The database clock every statement reads (see :attr:`clock_offset_ms`)."""
        return self._on_test_clock(self.server_now())

    def lock_time(self) -> ColumnElement[datetime]:
        """The moment a claim's row locks are taken, written as ``locked_at``.

        A claim statement that meets a row another transaction is releasing
        takes it once that transaction commits; its lock time must then come
        after the release, or a named queue's history shows two attempts
        overlapping. Where a claim is one statement that can meet such rows
        (PostgreSQL), this is the clock when the row is written, not when
        the statement began; elsewhere :meth:`now`.
        """
        return self.now()

    def _on_test_clock(self, moment: ColumnElement[datetime]) -> ColumnElement[datetime]:
        """``moment`` moved by :attr:`clock_offset_ms` when a test set it."""
        if self.clock_offset_ms is None:
            return moment
        offset = bindparam(None, callable_=self.clock_offset_ms, type_=BigInteger())
        return self.add_ms(moment, offset)

    def server_now(self) -> ColumnElement[datetime]:
        """The database server's current time, as stored in UTCDateTime columns."""
        raise NotImplementedError

    def add_ms(
        self, moment: ColumnElement[datetime], milliseconds: ColumnElement[int] | int
    ) -> ColumnElement[datetime]:
        """``moment`` shifted by a number of milliseconds (column or integer)."""
        raise NotImplementedError

    def ms_between(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[int]:
        """Whole milliseconds from ``start`` to ``end``."""
        raise NotImplementedError

    def has_any_flag(self, flags_column: Column[Any], flags: Sequence[str]) -> ColumnElement[bool]:
        """True where the JSON array column shares at least one element with ``flags``."""
        raise NotImplementedError

    def one_of(self, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
        """True where ``column`` equals one of ``values`` (an IN list by default).

        A dialect with array parameters sends the values as one array, so the
        statement text does not depend on how many there are.
        """
        return column.in_(list(values))

    def pair_of(
        self,
        first: ColumnElement[Any],
        second: ColumnElement[Any],
        pairs: Sequence[tuple[Any, Any]],
        *,
        key: str | None = None,
    ) -> ColumnElement[bool]:
        """True where ``(first, second)`` equals one of ``pairs`` (a row-value IN by default).

        With ``key`` the values are bound under names (``{key}_first`` and
        ``{key}_second`` on dialects with array parameters, ``key`` itself
        here), so a statement built once takes new pairs as execution
        parameters (see :meth:`pair_values`).
        """
        if key is not None:
            return tuple_(first, second).in_(bindparam(key, list(pairs), expanding=True))
        return tuple_(first, second).in_(list(pairs))

    def pair_values(self, key: str, pairs: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
        """The execution parameters of a ``pair_of(..., key=key)`` for ``pairs``."""
        return {key: list(pairs)}

    def rows_of(
        self,
        name: str,
        columns: Mapping[str, tuple[TypeEngine[Any], Sequence[Any]]],
        *,
        keyed: bool = False,
    ) -> FromClause:
        """Equal-length lists of values as a named table of rows (a UNION ALL by default).

        A dialect with array parameters sends one array per column, so the
        statement text does not depend on how many rows there are; ``keyed``
        binds each array as ``{name}_{column}``, so a statement built once
        takes new rows as execution parameters (only there: a UNION ALL's
        shape depends on the row count).
        """
        if keyed:
            raise NotImplementedError("keyed rows need a dialect with array parameters")
        rows = list(zip(*(v for _, v in columns.values()), strict=True))
        types = [(n, t) for n, (t, _) in columns.items()]
        if not rows:
            nothing = select(*(null().label(n) for n, _ in types)).where(false())
            return nothing.subquery(name)
        selects = [
            select(*(literal(v, t).label(n) for (n, t), v in zip(types, row, strict=True)))
            for row in rows
        ]
        return union_all(*selects).subquery(name)

    def upsert(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        key: Sequence[str],
        update: Mapping[str, ColumnElement[Any] | str] | None,
    ) -> Insert:
        """An INSERT that, on a conflict of ``key``, updates (or with None, keeps) the row.

        ``update`` maps column names to an expression over the existing row, or
        to the string ``"new"`` for the value the INSERT proposed.
        """
        raise NotImplementedError

    def insert_skipping_conflicts(
        self, table: Table, key: str, values: Mapping[str, ColumnElement[Any]]
    ) -> Insert:
        """An INSERT (rows given at execution) that skips rows whose ``key`` already exists.

        A skipped row's existing holder of the key is left row-locked, so the
        caller can read it back and apply its job-key mode without racing.

        ``values`` holds the columns computed in SQL. Check
        :attr:`skip_insert_returns_ids` before adding RETURNING to it.
        """
        raise NotImplementedError

    def new_uuid(self) -> ColumnElement[uuid.UUID] | None:
        """A random (version 4) UUID made by the database, a new one for each row.

        Claims stamp every job they lock with one, so their UPDATE carries no
        per-row parameters. None where the database has no good random source:
        the claim then sends a uuid4 per job.
        """
        return None

    #: Whether INSERT/UPDATE ... RETURNING may run as a data-modifying CTE.
    writes_in_ctes: bool = False
    #: Whether :meth:`copy_rows` is a faster bulk path than multi-row INSERTs.
    bulk_loads: bool = False

    def copy_rows(
        self,
        connection: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        schema: str | None,
    ) -> None:
        """Bulk-load complete rows in the connection's transaction, then wake workers.

        A JSON column's value is a document, or a :class:`JsonText` holding the
        document's JSON already written (so it is not encoded twice).
        """
        raise NotImplementedError

    def wake_up_values(self, run_at: ColumnElement[datetime]) -> dict[str, ColumnElement[Any]]:
        """Values for a new job's columns that also wake listening workers at commit.

        ``run_at`` is the new job's ``run_at``: for a job due later the wake-up
        says when, so that listening workers claim it then, not a poll later.
        Empty where workers poll. Riding on the INSERT saves a round trip per enqueue.
        """
        return {}

    def wake_up_condition(self) -> ColumnElement[bool] | None:
        """A true condition that also wakes listening workers at commit (None where they poll).

        Added to the UPDATE that frees named queues, so the queues' next jobs
        are claimed at once by any worker, with no extra round trip.
        """
        return None

    def open_listener(self, engine: Engine) -> Listener | None:
        """A connection listening for enqueue notifications, or None where workers must poll."""
        return None
