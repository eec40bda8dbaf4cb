"""PostgreSQL: statement-time clock, JSONB flags, ON CONFLICT upserts, LISTEN/NOTIFY."""

from __future__ import annotations

import contextlib
import decimal
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    Uuid,
    any_,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, TEXT, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import Interval, TypeEngine

from queuekit.dialects.base import JsonText, Listener, first_preparation, on_each_connection
from queuekit.dialects.on_conflict import OnConflictSupport
from queuekit.models import JSONDocument, UTCDateTime

#: The channel workers LISTEN on; one notification per enqueue transaction.
NOTIFY_CHANNEL = "queuekit_jobs"
#: libpq TCP keepalives for the connections queuekit opens itself: a peer that
#: vanished (cut link, dead host) is noticed after about 5 + 3 * 2 s idle, and a
#: write nobody acknowledges fails after 15 s instead of the kernel's minutes.
CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}
#: Longest application_name PostgreSQL keeps (NAMEDATALEN - 1).
LABEL_LENGTH = 63


def exact_float_dumps(value: Any) -> str:
    """``json.dumps``, except that floats written with an exponent get a decimal point.

    JSONB keeps numbers as ``numeric``, which remembers digits after a decimal
    point but not an exponent: ``1e+308`` would come back as an integer of 309
    digits. Written as ``1000...0.0`` it comes back as the same float.
    """
    text = json.dumps(value)
    if "e+" not in text:
        return text
    token = uuid.uuid4().hex
    numbers: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, float) and "e+" in repr(node):
            numbers.append(format(decimal.Decimal(repr(node)), "f") + ".0")
            return f"\x00{token}{len(numbers) - 1}\x00"
        if isinstance(node, dict):
            return {key: swap(item) for key, item in node.items()}
        if isinstance(node, list | tuple):
            return [swap(item) for item in node]
        return node

    placeholder = re.compile(r'"\\u0000' + token + r'(\d+)\\u0000"')
    return placeholder.sub(lambda found: numbers[int(found.group(1))], json.dumps(swap(value)))


class PostgreSQLSupport(OnConflictSupport):
    """PostgreSQL 13 and newer, through psycopg 3."""

    name = "postgresql"
    dialect_insert = staticmethod(insert)
    bulk_loads = True
    writes_in_ctes = True
    notifies = True

    def minimum_version(self, dialect: Dialect) -> tuple[str, tuple[int, ...]]:
        return "PostgreSQL", (13,)

    def prepare_engine(self, engine: Engine) -> None:
        # An application that chose its own JSON serializer keeps it.
        custom = getattr(engine.dialect, "_json_serializer", None)
        if custom is None and first_preparation(engine):
            on_each_connection(
                engine,
                lambda _dbapi, record: set_json_dumps(exact_float_dumps, record.driver_connection),
            )

    def client_connect_args(self, *, pooler: str | None) -> dict[str, Any]:
        args = dict(CLIENT_KEEPALIVES)
        if pooler == "transaction":
            # psycopg prepares a statement on the server after 5 runs; behind a
            # transaction pooler the next transaction may reach another server
            # connection that never saw it (PgBouncer before 1.21 cannot help).
            args["prepare_threshold"] = None
        return args

    def connection_label(self, name: str) -> dict[str, Any]:
        # A startup parameter, not a SET: it survives transaction pooling
        # (PgBouncer tracks application_name per client).
        return {"application_name": name[:LABEL_LENGTH]}

    def server_now(self) -> ColumnElement[datetime]:
        # statement_timestamp(): one value per statement, unlike now()'s
        # transaction start, so long caller transactions still see fresh time.
        return func.statement_timestamp(type_=UTCDateTime())

    def lock_time(self) -> ColumnElement[datetime]:
        # clock_timestamp(): read when the row is written, after any row lock
        # the statement waited for (statement_timestamp() is its start).
        return self._on_test_clock(func.clock_timestamp(type_=UTCDateTime()))

    def add_ms(
        self, moment: ColumnElement[datetime], milliseconds: ColumnElement[int] | int
    ) -> ColumnElement[datetime]:
        step = literal_column("interval '1 millisecond'", Interval())
        # Count times interval: Interval itself has no "mul" operator in SQLAlchemy.
        count = milliseconds if isinstance(milliseconds, ColumnElement) else literal(milliseconds)
        return type_coerce(moment + type_coerce(count, BigInteger()) * step, UTCDateTime())

    def limit_statement_time(self, connection: Connection, milliseconds: int) -> None:
        # set_config(..., true) is SET LOCAL: it ends with the transaction, pooler-safe.
        connection.execute(select(func.set_config("statement_timeout", str(milliseconds), True)))

    def prefer_index_reads(self, connection: Connection) -> None:
        # SET LOCAL as above; a relation with no usable index is still scanned.
        connection.execute(select(func.set_config("enable_seqscan", "off", True)))

    def ms_between(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[int]:
        return cast(func.floor(func.extract("epoch", end - start) * 1000), BigInteger())

    def has_any_flag(self, flags_column: Column[Any], flags: Sequence[str]) -> ColumnElement[bool]:
        wanted = bindparam(None, list(flags), type_=ARRAY(TEXT))
        return flags_column.op("?|", return_type=Boolean())(wanted)

    def one_of(self, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
        # column = ANY(:array): one statement text for any count, so the
        # compiled form is cached and psycopg prepares it once.
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))

    def pair_of(
        self,
        first: ColumnElement[Any],
        second: ColumnElement[Any],
        pairs: Sequence[tuple[Any, Any]],
        *,
        key: str | None = None,
    ) -> ColumnElement[bool]:
        # Two arrays unnested side by side give the pairs back as rows.
        names = (None, None) if key is None else (f"{key}_first", f"{key}_second")
        firsts = bindparam(names[0], [p[0] for p in pairs], type_=ARRAY(first.type))
        seconds = bindparam(names[1], [p[1] for p in pairs], type_=ARRAY(second.type))
        zipped = select(func.unnest(firsts), func.unnest(seconds))
        return tuple_(first, second).in_(zipped)

    def pair_values(self, key: str, pairs: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
        return {f"{key}_first": [p[0] for p in pairs], f"{key}_second": [p[1] for p in pairs]}

    def rows_of(
        self,
        name: str,
        columns: Mapping[str, tuple[TypeEngine[Any], Sequence[Any]]],
        *,
        keyed: bool = False,
    ) -> FromClause:
        # unnest() of one array per column, side by side, zips them into rows.
        return select(
            *(
                func.unnest(
                    bindparam(f"{name}_{n}" if keyed else None, list(v), type_=ARRAY(t)),
                    type_=t,
                ).label(n)
                for n, (t, v) in columns.items()
            )
        ).subquery(name)

    def new_uuid(self) -> ColumnElement[uuid.UUID]:
        return func.gen_random_uuid(type_=Uuid())

    def insert_skipping_conflicts(
        self, table: Table, key: str, values: Mapping[str, ColumnElement[Any]]
    ) -> Insert:
        # A no-op update instead of DO NOTHING: it waits for a concurrent insert
        # of the key and then row-locks the winner, so the caller's next look at
        # the key is sure to find that row (DO NOTHING locks nothing, and a
        # concurrent replace could delete the row again before we see it).
        statement = insert(table).values(dict(values))
        return statement.on_conflict_do_update(
            index_elements=[key], set_={key: statement.excluded[key]}
        )

    def wake_up_values(self, run_at: ColumnElement[datetime]) -> dict[str, ColumnElement[Any]]:
        # A new job's revision (0) is read from an uncorrelated subquery that
        # calls pg_notify: PostgreSQL runs it once per statement (once per row
        # of a multi-row VALUES), and delivers notifications at commit,
        # de-duplicated per transaction, so each enqueue transaction wakes
        # workers with no extra round trip. The payload is empty for a job due
        # now, else the seconds until its run_at by the database clock.
        now = self.now()
        payload = case(
            (run_at > now, cast(extract("epoch", run_at - now), TEXT)),
            else_=literal(""),
        )
        notified = select(literal(0)).select_from(func.pg_notify(NOTIFY_CHANNEL, payload))
        return {"revision": notified.scalar_subquery()}

    def wake_up_condition(self) -> ColumnElement[bool] | None:
        # An uncorrelated subquery, run at most once per statement (as above).
        notified = select(literal(True)).select_from(func.pg_notify(NOTIFY_CHANNEL, ""))
        return notified.scalar_subquery()

    def copy_rows(
        self,
        connection: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        schema: str | None,
    ) -> None:
        """COPY rows into ``table`` in the connection's transaction, then wake workers once.

        COPY has no SQLAlchemy construct; the statement is composed from
        quoted identifiers only. JSON columns are sent as JSONB.
        """
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSONDocument)}
        target = sql.Identifier(schema, table.name) if schema else sql.Identifier(table.name)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            target, sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        )
        documents = [index for index, name in enumerate(columns) if name in json_columns]
        driver: Any = connection.connection.driver_connection
        with driver.cursor() as cursor:
            with cursor.copy(statement) as copy:
                for row in rows:
                    values = list(row)
                    for index in documents:
                        values[index] = _copy_document(values[index])
                    copy.write_row(values)
            cursor.execute(sql.SQL("SELECT pg_notify({}, '')").format(sql.Literal(NOTIFY_CHANNEL)))

    def open_listener(self, engine: Engine) -> Listener | None:
        return PostgreSQLListener(engine)


def _copy_document(value: Any) -> Any:
    """A JSON column's value for COPY: text COPY lets the server parse JSON text as JSONB.

    Text already written is sent as it is, unless it holds an exponent, which
    :func:`exact_float_dumps` must rewrite (rare: one more encoding then).
    """
    if value is None:
        return None
    if isinstance(value, JsonText):
        return str(value) if "e+" not in value else Jsonb(json.loads(value))
    return Jsonb(value)


def _due_in(payload: str) -> float:
    """Seconds until the jobs a notification announces are due (0.0: now, or unreadable)."""
    try:
        seconds = float(payload)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


class PostgreSQLListener:
    """A psycopg connection of its own, in autocommit, LISTENing on :data:`NOTIFY_CHANNEL`.

    It comes from the engine (same URL and connect arguments) but is detached
    from the pool, so a listening connection is never handed to anyone else.
    """

    def __init__(self, engine: Engine) -> None:
        proxied = engine.raw_connection()
        proxied.detach()
        connection: Any = proxied.dbapi_connection
        self._connection = connection
        try:
            self._connection.rollback()
            self._connection.autocommit = True
            # LISTEN has no SQLAlchemy construct; the channel is a constant identifier.
            self._connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> list[float]:
        arrived = [
            _due_in(n.payload) for n in self._connection.notifies(timeout=timeout, stop_after=1)
        ]
        if arrived:
            # Take the notifications already queued behind the first in the same wake-up.
            arrived += [_due_in(n.payload) for n in self._connection.notifies(timeout=0.0)]
        return arrived

    def close(self) -> None:
        # Closing a broken connection may fail; it is gone either way.
        with contextlib.suppress(Exception):
            self._connection.close()
